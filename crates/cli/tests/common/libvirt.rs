//! Real libvirt for lab tests: a tiny QEMU guest image built from Debian packages
//! ([`guest_image`]: linux-image-amd64's kernel, uncompressed; an initramfs of
//! busybox-static and the virtio-net modules), a private libvirtd ([`Libvirtd`]) and the guest's serial
//! console ([`Console`]).
//!
//! Invariants: the host's libvirt is never touched — our libvirtd runs in its own
//! mount namespace (`unshare -m`) over private copies of its directories (in the
//! lab's scratch directory), with no default network, and is ended by its PID;
//! every domain it defined is destroyed and undefined, and its QEMU killed by PID,
//! when the [`Libvirtd`] is dropped (also during a panic's unwind). Mount points
//! the host lacked are created for the binds and removed again.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The virtio-net driver and what it needs, in load order (DESIGN §10).
pub const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

/// The guest's /init: load virtio-net, bring eth0 up, run udhcpc (its own script;
/// nothing on the host), then obey the serial console, one shell line at a time
/// (each in its own `sh -c`: a line that is not valid shell must not end init).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in MODULES; do insmod /lib/modules/$m.ko || echo "PCL-ERROR insmod $m" > /dev/ttyS0; done
echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
ip link set lo up
ip link set eth0 up
udhcpc -f -i eth0 -s /dhcp.sh -t 5 -T 1 -A 1 > /dev/null 2>&1 &
echo PCL-READY > /dev/ttyS0
while true; do
  while read -r line; do sh -c "$line"; done < /dev/ttyS0 > /dev/ttyS0 2>&1
done
"#;

/// udhcpc's script in the guest.
const DHCP_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-16}" dev "$interface"
    echo "PCL-LEASE $ip" > /dev/ttyS0 ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
"#;

/// The booted kernel and the initramfs built for it.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The uncompressed kernel (`vmlinux`, an ELF that QEMU boots through its
    /// PVH note, without the firmware's real-mode decompression: under TCG that
    /// halves the boot).
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub kernel_version: String,
}

/// `dpkg-query -W -f=FORMAT PACKAGE`, failing loudly.
fn dpkg_field(package: &str, format: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", &format!("-f={format}"), package])
        .output()
        .expect("run dpkg-query");
    assert!(
        out.status.success(),
        "the libvirt lab needs the Debian package {package} (scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The kernel version `linux-image-amd64` depends on now (`6.1.0-57-amd64`).
pub fn kernel_version() -> String {
    let depends = dpkg_field("linux-image-amd64", "${Depends}");
    depends
        .split(',')
        .flat_map(|d| d.split('|'))
        .map(str::trim)
        .find_map(|d| d.strip_prefix("linux-image-"))
        .and_then(|d| d.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no linux-image-… in linux-image-amd64's Depends: {depends}"))
}

/// FNV-1a, to key the cached image by what went into it.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A `newc` cpio archive, built in memory.
struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            data: Vec::new(),
            ino: 1,
        }
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(body.len()).expect("file fits a cpio entry"),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("name fits"),
            0,
        ];
        self.ino += 1;
        self.data.extend_from_slice(b"070701");
        for f in fields {
            self.data.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), body);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.data
    }
}

/// The guest image for the kernel `linux-image-amd64` names: its vmlinuz, and an
/// initramfs with busybox-static, the virtio-net modules and our /init, built once
/// and cached under target/ by kernel version and content.
pub fn guest_image() -> GuestImage {
    let kver = kernel_version();
    let vmlinuz = PathBuf::from(format!("/boot/vmlinuz-{kver}"));
    assert!(
        vmlinuz.exists(),
        "{} is missing: reinstall linux-image-{kver}",
        vmlinuz.display()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libvirt-guest");
    std::fs::create_dir_all(&dir).expect("create the image cache directory");
    let kernel = dir.join(format!("vmlinux-{kver}"));
    if !kernel.exists() {
        extract_vmlinux(&vmlinuz, &kernel);
    }
    let busybox_path = PathBuf::from("/bin/busybox");
    dpkg_field("busybox-static", "${Version}");
    let busybox = std::fs::read(&busybox_path).expect("read /bin/busybox (busybox-static)");
    let modules: Vec<(String, Vec<u8>)> = MODULES
        .iter()
        .map(|m| {
            let path = find_module(&kver, m);
            (
                m.to_string(),
                std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("read module {}: {e}", path.display())),
            )
        })
        .collect();
    let init = INIT.replace("MODULES", &MODULES.join(" "));
    let mut parts: Vec<&[u8]> = vec![init.as_bytes(), DHCP_SCRIPT.as_bytes(), &busybox];
    parts.extend(modules.iter().map(|(_, b)| b.as_slice()));
    let key = fnv(&parts);
    let initrd = dir.join(format!("initrd-{kver}-{key:016x}.img"));
    if !initrd.exists() {
        let mut c = Cpio::new();
        for d in [
            "bin",
            "sbin",
            "usr",
            "usr/bin",
            "usr/sbin",
            "lib",
            "lib/modules",
            "proc",
            "sys",
            "dev",
            "etc",
            "tmp",
            "run",
        ] {
            c.dir(d);
        }
        c.entry("dev/console", 0o020600, (5, 1), &[]);
        c.file("bin/busybox", 0o755, &busybox);
        c.file("init", 0o755, init.as_bytes());
        c.file("dhcp.sh", 0o755, DHCP_SCRIPT.as_bytes());
        for (m, body) in &modules {
            c.file(&format!("lib/modules/{m}.ko"), 0o644, body);
        }
        let tmp = dir.join(format!("initrd.{}.tmp", std::process::id()));
        std::fs::write(&tmp, c.finish()).expect("write the initramfs");
        std::fs::rename(&tmp, &initrd).expect("install the initramfs");
    }
    // Earlier builds (another kernel, other content) are not needed again.
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let old_initrd = name.starts_with("initrd-") && e.path() != initrd;
        let old_kernel = name.starts_with("vmlinux-") && e.path() != kernel;
        if old_initrd || old_kernel {
            let _ = std::fs::remove_file(e.path());
        }
    }
    GuestImage {
        kernel,
        initrd,
        kernel_version: kver,
    }
}

/// Writes the ELF kernel inside the bzImage `vmlinuz` (Debian compresses it with
/// xz) to `out`, as the kernel's scripts/extract-vmlinux does.
fn extract_vmlinux(vmlinuz: &Path, out: &Path) {
    let image = std::fs::read(vmlinuz).expect("read the kernel image");
    let magic = b"\xfd7zXZ\x00";
    let at = image
        .windows(magic.len())
        .position(|w| w == magic)
        .unwrap_or_else(|| panic!("no xz stream in {}", vmlinuz.display()));
    let mut xz = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run xz (xz-utils)");
    let mut stdin = xz.stdin.take().expect("xz stdin");
    let compressed = image[at..].to_vec();
    let feeder = std::thread::spawn(move || {
        // xz stops reading at the end of the stream: a broken pipe is expected.
        let _ = stdin.write_all(&compressed);
    });
    let done = xz.wait_with_output().expect("xz output");
    let _ = feeder.join();
    assert!(
        done.stdout.starts_with(b"\x7fELF"),
        "{} did not decompress to an ELF kernel",
        vmlinuz.display()
    );
    let tmp = out.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, &done.stdout).expect("write vmlinux");
    std::fs::rename(&tmp, out).expect("install vmlinux");
}

/// The path of module `name` of kernel `kver` (uncompressed, as Debian ships them).
fn find_module(kver: &str, name: &str) -> PathBuf {
    let root = PathBuf::from(format!("/lib/modules/{kver}/kernel"));
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|f| f.to_str()) == Some(&format!("{name}.ko")) {
                return p;
            }
        }
    }
    panic!("module {name}.ko not found under {}", root.display())
}

/// The directories libvirtd gets private copies of.
const PRIVATE_DIRS: &[(&str, &str)] = &[
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("run", "/run/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
];

/// One libvirt lab at a time in a test process: each creates the mount points the
/// host lacks and removes them when it ends, and both build the same cached guest
/// image. Held for a whole test (`let _turn = one_at_a_time();`).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked holding it leaves nothing shared half-done: its drops ran.
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Our own libvirtd, in a private mount namespace, with the QEMU hook installed
/// (or none).
#[derive(Debug)]
pub struct Libvirtd {
    pub dir: PathBuf,
    pub uri: String,
    /// What `unshare -m sh -c` runs: the binds, then libvirtd.
    script: String,
    /// Variables set in libvirtd's environment (beside the test's own).
    env: Vec<(String, String)>,
    child: Option<Child>,
    domains: Vec<String>,
    created_dirs: Vec<PathBuf>,
}

/// Runs `cmd` with a time limit (SIGKILL after it; the output so far is lost).
fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait_with_output().expect("collect output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Libvirtd {
    /// Starts libvirtd with its directories under `dir` (made here), its QEMU hook
    /// being the executable `hook` run with `hook_args` before libvirt's own.
    pub fn start(dir: &Path, hook: &str, hook_args: &[&str]) -> Libvirtd {
        Libvirtd::start_with(dir, Some((hook, hook_args)), &[])
    }

    /// Starts libvirtd with its directories under `dir` (made here), the QEMU hook
    /// `hook` (executable, arguments) if any, and `env` added to its environment
    /// (which the programs it runs, such as `ovs-vsctl`, inherit).
    pub fn start_with(dir: &Path, hook: Option<(&str, &[&str])>, env: &[(&str, &str)]) -> Libvirtd {
        for tool in ["libvirtd", "virsh", "qemu-system-x86_64", "unshare"] {
            assert!(
                portcullis_lab::Lab::require_tools(&[tool]).is_ok(),
                "the libvirt lab needs {tool} (scripts/test.sh installs libvirt-daemon, libvirt-clients, libvirt-daemon-driver-qemu and qemu-system-x86)"
            );
        }
        std::fs::create_dir_all(dir).expect("create libvirt dir");
        let mut created_dirs = Vec::new();
        for (sub, target) in PRIVATE_DIRS {
            std::fs::create_dir_all(dir.join(sub)).expect("create private dir");
            let t = Path::new(target);
            if !t.exists() {
                std::fs::create_dir_all(t).expect("create a mount point");
                created_dirs.push(t.to_path_buf());
            }
        }
        let etc = dir.join("etc");
        // Debian's libvirtd resolves the qemu user before reading qemu.conf: give
        // it one in private copies of passwd and group (the host's are unchanged).
        let mut passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        if !passwd.lines().any(|l| l.starts_with("libvirt-qemu:")) {
            passwd.push_str("libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n");
        }
        let mut group = std::fs::read_to_string("/etc/group").expect("read /etc/group");
        for g in ["libvirt-qemu:x:64055:", "kvm:x:64056:"] {
            let name = g.split(':').next().unwrap_or_default();
            if !group.lines().any(|l| l.starts_with(&format!("{name}:"))) {
                group.push_str(g);
                group.push('\n');
            }
        }
        std::fs::write(dir.join("passwd"), passwd).unwrap();
        std::fs::write(dir.join("group"), group).unwrap();
        std::fs::write(
            etc.join("libvirtd.conf"),
            "unix_sock_group = \"root\"\nunix_sock_rw_perms = \"0700\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nlog_outputs = \"3:stderr\"\n",
        )
        .unwrap();
        // Root QEMU without labels, cgroups or a private /dev; QEMU's output in a
        // file (no virtlogd).
        std::fs::write(
            etc.join("qemu.conf"),
            "user = \"root\"\ngroup = \"root\"\ndynamic_ownership = 0\nremember_owner = 0\nsecurity_driver = \"none\"\nstdio_handler = \"file\"\nnamespaces = [ ]\ncgroup_controllers = [ ]\n",
        )
        .unwrap();
        std::fs::create_dir_all(etc.join("hooks")).unwrap();
        if let Some((hook, hook_args)) = hook {
            let hook_script = etc.join("hooks/qemu");
            let quoted: Vec<String> = std::iter::once(hook)
                .chain(hook_args.iter().copied())
                .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                .collect();
            std::fs::write(
                &hook_script,
                format!("#!/bin/sh\nexec {} \"$@\"\n", quoted.join(" ")),
            )
            .unwrap();
            std::process::Command::new("chmod")
                .arg("755")
                .arg(&hook_script)
                .status()
                .unwrap();
        }
        let mut script = String::from("set -e\nmount --make-rprivate /\n");
        script.push_str(&format!(
            "mount --bind '{0}/passwd' /etc/passwd\nmount --bind '{0}/group' /etc/group\n",
            dir.display()
        ));
        for (sub, target) in PRIVATE_DIRS {
            script.push_str(&format!(
                "mount --bind '{}/{sub}' {target}\n",
                dir.display()
            ));
        }
        script.push_str(&format!(
            "exec libvirtd --pid-file '{0}/libvirtd.pid' --config '{0}/etc/libvirtd.conf'\n",
            dir.display()
        ));
        let sock = dir.join("run/libvirt-sock");
        let uri = format!("qemu:///system?socket={}", sock.display());
        let mut d = Libvirtd {
            dir: dir.to_path_buf(),
            uri,
            script,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            domains: Vec::new(),
            created_dirs,
        };
        d.spawn_daemon();
        d
    }

    /// Starts libvirtd and waits until it answers.
    fn spawn_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("libvirtd.log"))
            .unwrap();
        // `unshare` execs sh, which execs libvirtd: the child's PID is libvirtd's.
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", &self.script])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn libvirtd");
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("libvirtd exited ({st}):\n{}", self.log_text());
            }
            if self.virsh(&["version"]).status.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "libvirtd did not answer within 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends libvirtd by its PID (SIGTERM, then SIGKILL after 5 s). Its domains
    /// keep running, as on a real host.
    fn stop_daemon(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    /// Restarts libvirtd while its domains run: it reconnects to them (the
    /// `reconnect` hook).
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.spawn_daemon();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("libvirtd.log")).unwrap_or_default()
    }

    /// `virsh -c <our libvirtd> args…` (at most 60 s).
    pub fn virsh(&self, args: &[&str]) -> Output {
        let mut c = Command::new("virsh");
        c.arg("-c").arg(&self.uri).args(args);
        run_limited(c, Duration::from_secs(60))
    }

    /// `virsh args…`, which must succeed; its stdout.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?}: {}{}\n--- libvirtd ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Defines the domain `name` from `xml` (destroyed and undefined on drop).
    pub fn define(&mut self, name: &str, xml: &str) {
        let path = self.dir.join(format!("{name}.xml"));
        std::fs::write(&path, xml).unwrap();
        self.domains.push(name.to_string());
        self.virsh_ok(&["define", path.to_str().unwrap()]);
    }

    /// The PID of the domain's QEMU, if it runs.
    pub fn qemu_pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("run/qemu/{name}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|p: &u32| Path::new(&format!("/proc/{p}")).exists())
    }

    /// The domain's QEMU log (its command line and errors).
    pub fn qemu_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("log/qemu/{name}.log"))).unwrap_or_default()
    }
}

/// The QEMU processes whose command line runs domain `name` (`-name guest=NAME,…`;
/// the test's domain names are unique to its lab).
fn qemu_pids_of(name: &str) -> Vec<u32> {
    let needle = format!("guest={name},");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.starts_with("qemu") && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

fn signal(pid: u32, sig: i32) {
    if let Ok(p) = libc::pid_t::try_from(pid)
        && p > 0
    {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is one of
        // our libvirtd's QEMUs, read from its private pid file just now.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        for d in self.domains.clone() {
            // The pid file's QEMU, and any QEMU running this domain (a libvirtd
            // that lost the domain, e.g. after a failed reconnect, may have removed
            // the pid file but not the process).
            let mut qemu: Vec<u32> = self.qemu_pid(&d).into_iter().collect();
            qemu.extend(qemu_pids_of(&d));
            let _ = self.virsh(&["destroy", &d]);
            let _ = self.virsh(&["undefine", &d]);
            for pid in qemu {
                // Only if the process is still a QEMU (not a reused pid).
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.starts_with("qemu") {
                    signal(pid, libc::SIGKILL);
                }
            }
        }
        self.stop_daemon();
        for d in self.created_dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The guest's serial console, a Unix socket QEMU serves (libvirt `<serial
/// type='unix'>`): the guest's /init runs each line it is sent as a shell command.
#[derive(Debug)]
pub struct Console {
    stream: UnixStream,
    /// Everything the guest printed so far.
    pub seen: String,
    next: u32,
}

impl Console {
    /// Connects to `path` (waiting up to 20 s for QEMU to create it).
    pub fn connect(path: &Path) -> Console {
        let t = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(
                        t.elapsed() < Duration::from_secs(20),
                        "console {}: {e}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Console {
            stream,
            seen: String::new(),
            next: 1,
        }
    }

    /// Reads what is there (up to 20 ms).
    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => {}
        }
    }

    /// Waits until the guest printed `needle` (after byte `from` of [`Self::seen`]).
    pub fn wait_for(&mut self, from: usize, needle: &str, limit: Duration) -> bool {
        let t = Instant::now();
        loop {
            self.pump();
            if self.seen.get(from..).is_some_and(|s| s.contains(needle)) {
                return true;
            }
            if t.elapsed() >= limit {
                return false;
            }
        }
    }

    /// Waits until the guest's command loop answers: its /init says PCL-READY
    /// (unless that was before we connected), then a probe is answered. (A line
    /// sent while the guest boots waits in its tty, so probe only now and then.)
    pub fn wait_ready(&mut self, limit: Duration) {
        let t = Instant::now();
        self.wait_for(0, "PCL-READY", limit / 2);
        loop {
            if self.try_run("true", Duration::from_secs(2)).is_some() {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "the guest's console did not answer within {limit:?}:\n{}",
                self.seen
            );
        }
    }

    /// Runs `cmd` in the guest; its exit status and output, or `None` if it did
    /// not finish within `limit`.
    pub fn try_run(&mut self, cmd: &str, limit: Duration) -> Option<(i32, String)> {
        let n = self.next;
        self.next += 1;
        let start = self.seen.len();
        let line = format!("{cmd}; echo PCL-END-{n}-$?\n");
        self.stream.write_all(line.as_bytes()).ok()?;
        let marker = format!("PCL-END-{n}-");
        let t = Instant::now();
        loop {
            // The tty echoes the line itself, with a literal `$?` after the marker.
            if let Some(text) = self.seen.get(start..) {
                for (i, _) in text.match_indices(&marker) {
                    let rest = &text[i + marker.len()..];
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if !digits.is_empty() {
                        let output = text[..i].to_string();
                        return Some((digits.parse().unwrap_or(-1), output));
                    }
                }
            }
            if t.elapsed() > limit {
                return None;
            }
            self.pump();
        }
    }

    /// Runs `cmd` in the guest (it must finish within `limit`).
    pub fn run(&mut self, cmd: &str, limit: Duration) -> (i32, String) {
        self.try_run(cmd, limit).unwrap_or_else(|| {
            panic!(
                "guest command {cmd:?} did not finish within {limit:?}:\n{}",
                self.seen
            )
        })
    }
}
