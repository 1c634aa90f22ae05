//! The [`Lab`]: owner of every namespace, link and process it creates.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd::{checked, output};
use crate::guest::{GUEST_IF, Guest};
use crate::names::{belongs_to_lab, if_name, parse_pid, pid_prefix, sanitize};
use crate::{LabError, tools};

/// Labs created so far by this process; part of each lab's id.
static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long [`Lab::kill`] and teardown wait after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);

const SCRATCH_PREFIX: &str = "portcullis-lab-";

#[derive(Debug)]
struct Tracked {
    pid: u32,
    child: Child,
}

/// A set of guests (network namespaces), host-side links and processes that is
/// torn down completely when the `Lab` is dropped, also during a panic's unwind:
/// tracked processes are stopped by pid (SIGTERM, up to [`KILL_GRACE`], then SIGKILL)
/// and reaped, lab links in the root namespace are deleted, namespaces are deleted
/// (`ip netns del`) and the scratch directory is removed. Nothing the lab did not
/// create is touched. Teardown problems are printed to stderr; use [`Lab::close`]
/// to get them as an error instead.
///
/// Every object's name starts with the lab's [`Lab::id`] (`pcl` + creating pid in
/// base 36 + a per-process counter), so names are unique across labs and processes
/// and leftovers of dead processes can be removed by [`Lab::cleanup_stale`].
#[derive(Debug)]
pub struct Lab {
    id: String,
    tag: String,
    ip: PathBuf,
    next: u32,
    guests: Vec<Guest>,
    netns: Vec<String>,
    links: Vec<String>,
    bridges: Vec<String>,
    procs: Vec<Tracked>,
    scratch: Option<PathBuf>,
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn list_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn list_netns(ip: &Path) -> Vec<String> {
    let Ok(out) = output(Command::new(ip).args(["netns", "list"])) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

fn write_proc(path: &str, value: &str) -> Result<(), LabError> {
    match std::fs::write(path, value) {
        Ok(()) => Ok(()),
        // No such knob (e.g. IPv6 compiled out): nothing to silence.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(format!("writing {value} to {path}"), e)),
    }
}

/// Keeps the host stack silent on a lab link in the root namespace: no IPv6 at all
/// (no RS/MLD/DAD), and never answer ARP for the host's own addresses.
fn quiet_host_if(name: &str) -> Result<(), LabError> {
    write_proc(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1")?;
    write_proc(&format!("/proc/sys/net/ipv4/conf/{name}/arp_ignore"), "8")
}

/// Sends `signal` to `pid`.
fn send_signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions. Callers only pass the pid
    // of a child this lab spawned and has not reaped yet, so the pid cannot have
    // been recycled for an unrelated process.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Stops processes: `signal` to each still running, wait up to `grace` for all,
/// SIGKILL the rest; every one is reaped. Returns (pid, how it ended).
fn stop_processes(
    procs: Vec<Tracked>,
    signal: i32,
    grace: Duration,
) -> Vec<(u32, io::Result<ExitStatus>)> {
    let mut done = Vec::new();
    let mut pending = Vec::new();
    for mut t in procs {
        match t.child.try_wait() {
            Ok(Some(st)) => done.push((t.pid, Ok(st))),
            _ => {
                send_signal(t.pid, signal);
                pending.push(t);
            }
        }
    }
    let deadline = Instant::now() + grace;
    while !pending.is_empty() && Instant::now() < deadline {
        sleep(Duration::from_millis(10));
        let mut still = Vec::new();
        for mut t in pending {
            match t.child.try_wait() {
                Ok(Some(st)) => done.push((t.pid, Ok(st))),
                _ => still.push(t),
            }
        }
        pending = still;
    }
    for mut t in pending {
        // Child::kill sends SIGKILL to this child's pid (still unreaped, so ours).
        let _ = t.child.kill();
        done.push((t.pid, t.child.wait()));
    }
    done
}

/// Deletes root-namespace links, namespaces and scratch directories whose names
/// satisfy `pred`. Returns (removed, errors).
fn remove_matching(ip: &Path, pred: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    for l in list_links().into_iter().filter(|l| pred(l)) {
        match checked(Command::new(ip).args(["link", "del", "dev", &l])) {
            Ok(_) => removed.push(format!("link {l}")),
            // Already gone (e.g. the peer of a pair deleted just before).
            Err(_) if !link_exists(&l) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    for ns in list_netns(ip).into_iter().filter(|n| pred(n)) {
        match checked(Command::new(ip).args(["netns", "del", &ns])) {
            Ok(_) => removed.push(format!("netns {ns}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.filter_map(|e| e.ok()) {
            let fname = e.file_name().to_string_lossy().into_owned();
            if fname.strip_prefix(SCRATCH_PREFIX).is_some_and(&pred) {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => removed.push(format!("dir {}", e.path().display())),
                    Err(err) => errors.push(format!("removing {}: {err}", e.path().display())),
                }
            }
        }
    }
    (removed, errors)
}

impl Lab {
    /// Creates an empty lab. `tag` is a human label (e.g. the test name) that also
    /// appears, sanitized, in namespace names. Fails with a clear message if not
    /// root or if `ip` (iproute2) is missing. Also removes leftovers of an earlier,
    /// dead process that happened to have the same pid and lab number.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        Self::require_root()?;
        Self::require_tools(&["ip"])?;
        let ip = tools::tool_path("ip")?;
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", pid_prefix(std::process::id()));
        let _ = remove_matching(&ip, |name| belongs_to_lab(name, &id));
        Ok(Lab {
            id,
            tag: sanitize(tag, 24),
            ip,
            next: 0,
            guests: Vec::new(),
            netns: Vec::new(),
            links: Vec::new(),
            bridges: Vec::new(),
            procs: Vec::new(),
            scratch: None,
        })
    }

    /// Errors with "lab tests need root: run as root (sudo)" unless the effective
    /// uid is 0.
    pub fn require_root() -> Result<(), LabError> {
        // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            Ok(())
        } else {
            Err(LabError::NotRoot)
        }
    }

    /// Checks that every tool is installed (on `$PATH`, or in /usr/sbin, /sbin, ...).
    /// The error lists all missing tools and the Debian packages providing them
    /// (e.g. `ping` → iputils-ping, `ip` → iproute2). The pseudo-tool `scapy` means
    /// "/usr/bin/python3 can import scapy" (package python3-scapy).
    pub fn require_tools(tools: &[&str]) -> Result<(), LabError> {
        tools::require(tools)
    }

    /// Removes namespaces, root-namespace interfaces and scratch directories left by
    /// earlier lab runs whose creating process is dead (judged from the pid encoded
    /// in the name). Leaves everything of live processes alone and kills nothing.
    /// Returns what was removed (e.g. `netns pcl00abc0n0-x`, `link pcl00abc0h0`).
    pub fn cleanup_stale() -> Result<Vec<String>, LabError> {
        Self::require_root()?;
        let ip = tools::tool_path("ip")?;
        let me = std::process::id();
        let (removed, errors) = remove_matching(&ip, |name| {
            parse_pid(name).is_some_and(|pid| pid != me && !pid_alive(pid))
        });
        if errors.is_empty() {
            Ok(removed)
        } else {
            Err(LabError::Cleanup(errors))
        }
    }

    /// This lab's id, the prefix of every name it creates (e.g. `pcl009ix0`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The (sanitized) tag given to [`Lab::new`].
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The guests created so far.
    pub fn guests(&self) -> &[Guest] {
        &self.guests
    }

    /// The guest with logical name `name`, if any.
    pub fn guest(&self, name: &str) -> Option<&Guest> {
        self.guests.iter().find(|g| g.name == name)
    }

    pub(crate) fn next_idx(&mut self) -> u32 {
        let i = self.next;
        self.next += 1;
        i
    }

    fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        checked(Command::new(&self.ip).args(args)).map(|_| ())
    }

    /// Creates a guest: a namespace plus a veth pair whose host end (returned as
    /// [`Guest::host_if`]) stays in the root namespace, up, without IPv4 and with IPv6
    /// disabled, and whose other end is `eth0` inside the namespace, up, with `lo` up.
    /// `name` is a logical name, unique within the lab.
    pub fn add_guest(&mut self, name: &str) -> Result<Guest, LabError> {
        if name.is_empty() || self.guest(name).is_some() {
            return Err(LabError::InvalidArg(format!(
                "guest name `{name}` is empty or already used in this lab"
            )));
        }
        let idx = self.next_idx();
        let host_if = if_name(&self.id, 'h', idx)?;
        let mut netns = format!("{}n{idx}", self.id);
        if !self.tag.is_empty() {
            netns = format!("{netns}-{}", self.tag);
        }
        netns = format!("{netns}-{}", sanitize(name, 24));

        self.ip(&["netns", "add", &netns])?;
        self.netns.push(netns.clone());
        self.ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", GUEST_IF, "netns", &netns,
        ])?;
        self.links.push(host_if.clone());
        quiet_host_if(&host_if)?;
        self.ip(&["link", "set", "dev", &host_if, "up"])?;
        self.ip(&["-n", &netns, "link", "set", "dev", "lo", "up"])?;
        self.ip(&["-n", &netns, "link", "set", "dev", GUEST_IF, "up"])?;

        let g = Guest {
            name: name.to_string(),
            netns,
            host_if,
            guest_if: GUEST_IF.to_string(),
            ip: self.ip.clone(),
        };
        self.guests.push(g.clone());
        Ok(g)
    }

    /// Creates a veth pair with both ends in the root namespace (up, silent like a
    /// guest's host end), e.g. to give the switch a port whose peer a test reads or
    /// writes directly. Returns the two interface names.
    pub fn add_host_veth(&mut self) -> Result<(String, String), LabError> {
        let idx = self.next_idx();
        let a = if_name(&self.id, 'p', idx)?;
        let b = if_name(&self.id, 'q', idx)?;
        self.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        self.links.push(a.clone());
        self.links.push(b.clone());
        for n in [&a, &b] {
            quiet_host_if(n)?;
            self.ip(&["link", "set", "dev", n, "up"])?;
        }
        Ok((a, b))
    }

    /// Creates a Linux bridge in the root namespace (up, no address, IPv6 off,
    /// forward delay 0) and enslaves `ports`, which must be interfaces this lab
    /// created (guests' host ends or host veths). Useful as a reference switch.
    /// Returns the bridge's name.
    pub fn add_bridge(&mut self, ports: &[&str]) -> Result<String, LabError> {
        for p in ports {
            if !self.links.iter().any(|l| l == p) || self.bridges.iter().any(|b| b == p) {
                return Err(LabError::InvalidArg(format!(
                    "`{p}` is not an interface created by this lab; only those can join a lab bridge"
                )));
            }
        }
        let idx = self.next_idx();
        let br = if_name(&self.id, 'b', idx)?;
        self.ip(&[
            "link",
            "add",
            "name",
            &br,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        self.links.push(br.clone());
        self.bridges.push(br.clone());
        quiet_host_if(&br)?;
        self.ip(&["link", "set", "dev", &br, "up"])?;
        for p in ports {
            self.ip(&["link", "set", "dev", p, "master", &br])?;
        }
        Ok(br)
    }

    /// A scratch directory for this lab (config files, captures), created on first
    /// use under the system temp dir and removed with the lab.
    pub fn scratch_dir(&mut self) -> Result<PathBuf, LabError> {
        if let Some(d) = &self.scratch {
            return Ok(d.clone());
        }
        let d = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}s", self.id));
        std::fs::create_dir_all(&d)
            .map_err(|e| LabError::io(format!("creating {}", d.display()), e))?;
        self.scratch = Some(d.clone());
        Ok(d)
    }

    /// Starts `cmd` (typically from [`Guest::command`]) and tracks it: it is stopped
    /// by its pid and reaped by [`Lab::kill`] or when the lab is dropped. Returns the
    /// pid. The program must stay in the foreground (no daemonizing): the lab only
    /// ever signals the pid it spawned. Stdio is whatever `cmd` was configured with.
    pub fn spawn(&mut self, mut cmd: Command) -> Result<u32, LabError> {
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: crate::cmd::describe(&cmd),
            source,
        })?;
        let pid = child.id();
        self.procs.push(Tracked { pid, child });
        Ok(pid)
    }

    /// The pids of the processes this lab is tracking.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|t| t.pid).collect()
    }

    /// Stops tracked process `pid`: SIGTERM, up to [`KILL_GRACE`], then SIGKILL;
    /// reaps it and forgets it. Returns how it ended, or `None` (doing nothing) if
    /// `pid` is not a process this lab started.
    pub fn kill(&mut self, pid: u32) -> Option<ExitStatus> {
        self.kill_with(pid, libc::SIGTERM, KILL_GRACE)
    }

    /// Like [`Lab::kill`] with a chosen first signal (e.g. `libc::SIGINT`) and grace
    /// period before SIGKILL.
    pub fn kill_with(&mut self, pid: u32, signal: i32, grace: Duration) -> Option<ExitStatus> {
        let i = self.procs.iter().position(|t| t.pid == pid)?;
        let t = self.procs.remove(i);
        stop_processes(vec![t], signal, grace)
            .pop()
            .and_then(|(_, r)| r.ok())
    }

    /// Waits up to `timeout` (zero: just checks) for tracked process `pid` to exit on
    /// its own. `Some(status)` once it has exited (it is then reaped and no longer
    /// tracked); `None` if it is still running.
    pub fn wait_exit(
        &mut self,
        pid: u32,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>, LabError> {
        let i = self
            .procs
            .iter()
            .position(|t| t.pid == pid)
            .ok_or(LabError::UnknownProcess(pid))?;
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.procs[i]
                .child
                .try_wait()
                .map_err(|e| LabError::io(format!("waiting for process {pid}"), e))?;
            if let Some(st) = st {
                self.procs.remove(i);
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` until the Unix socket `path` accepts a connection — a
    /// server the lab spawned as `pid` is ready. Fails with the exit status if the
    /// process exits first, or with [`LabError::Timeout`].
    pub fn wait_for_socket(
        &mut self,
        pid: u32,
        path: &std::path::Path,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        while std::os::unix::net::UnixStream::connect(path).is_err() {
            if let Some(status) = self.wait_exit(pid, Duration::from_millis(50))? {
                return Err(LabError::CommandFailed {
                    cmd: format!("process {pid} serving {}", path.display()),
                    status: status.to_string(),
                    stderr: String::new(),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "process {pid} did not open {} within {timeout:?}",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Tears everything down now and reports what could not be removed.
    pub fn close(mut self) -> Result<(), LabError> {
        let errors = self.teardown();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Cleanup(errors))
        }
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for (pid, r) in stop_processes(std::mem::take(&mut self.procs), libc::SIGTERM, KILL_GRACE) {
            if let Err(e) = r {
                errors.push(format!("reaping process {pid}: {e}"));
            }
        }
        for l in std::mem::take(&mut self.links).into_iter().rev() {
            if link_exists(&l)
                && let Err(e) = self.ip(&["link", "del", "dev", &l])
                && link_exists(&l)
            {
                errors.push(e.to_string());
            }
        }
        self.bridges.clear();
        let netns = std::mem::take(&mut self.netns);
        if !netns.is_empty() {
            let present = list_netns(&self.ip);
            for ns in netns.iter().rev().filter(|n| present.contains(n)) {
                if let Err(e) = self.ip(&["netns", "del", ns]) {
                    errors.push(e.to_string());
                }
            }
        }
        self.guests.clear();
        if let Some(d) = self.scratch.take()
            && let Err(e) = std::fs::remove_dir_all(&d)
            && d.exists()
        {
            errors.push(format!("removing {}: {e}", d.display()));
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("portcullis-lab {}: cleanup: {e}", self.id);
        }
    }
}
