//! Packet capture with tcpdump inside a guest (or on a root-namespace interface).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cmd::checked;
use crate::{Guest, Lab, LabError, tools};

/// How long [`Capture::start`] waits for tcpdump to report "listening on".
pub const CAPTURE_START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Capture::stop`] lets in-flight frames reach tcpdump before stopping it.
const SETTLE: Duration = Duration::from_millis(200);

/// A running tcpdump, tracked by the [`Lab`] (so it dies with the lab even if
/// [`Capture::stop`] is never called). It writes a pcap file (packet-buffered,
/// immediate mode) into the lab's scratch directory.
#[derive(Debug)]
pub struct Capture {
    pid: u32,
    iface: String,
    pcap: PathBuf,
    stderr: PathBuf,
}

/// What a capture saw.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// One line per frame, as printed by `tcpdump -r FILE -n -e`
    /// (timestamp, MACs, ethertype, summary).
    pub lines: Vec<String>,
    /// The raw frames (Ethernet header onwards), in capture order.
    pub frames: Vec<Vec<u8>>,
    /// The pcap file (inside the lab's scratch dir: removed with the lab).
    pub pcap: PathBuf,
}

impl Captured {
    /// The lines that contain `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|l| l.contains(needle))
            .map(String::as_str)
            .collect()
    }
}

impl Capture {
    /// Starts `tcpdump` on `iface` inside `guest` (usually `"eth0"`), with an optional
    /// BPF filter given as words (e.g. `&["icmp"]`, or `&[]` for everything), and
    /// returns once tcpdump reports it is listening. Fails clearly if tcpdump is
    /// missing, exits early, or does not start listening within
    /// [`CAPTURE_START_TIMEOUT`].
    pub fn start(
        lab: &mut Lab,
        guest: &Guest,
        iface: &str,
        filter: &[&str],
    ) -> Result<Capture, LabError> {
        Self::start_with(lab, guest.command("tcpdump"), iface, filter)
    }

    /// Like [`Capture::start`] but on an interface of the root namespace
    /// (e.g. a guest's `host_if` or a lab bridge). Capturing is passive.
    pub fn start_host(lab: &mut Lab, iface: &str, filter: &[&str]) -> Result<Capture, LabError> {
        let cmd = Command::new(tools::tool_path("tcpdump")?);
        Self::start_with(lab, cmd, iface, filter)
    }

    fn start_with(
        lab: &mut Lab,
        mut cmd: Command,
        iface: &str,
        filter: &[&str],
    ) -> Result<Capture, LabError> {
        Lab::require_tools(&["tcpdump"])?;
        let dir = lab.scratch_dir()?;
        let n = lab.next_idx();
        let pcap = dir.join(format!("cap{n}.pcap"));
        let stderr = dir.join(format!("cap{n}.err"));
        let err_file = File::create(&stderr)
            .map_err(|e| LabError::io(format!("creating {}", stderr.display()), e))?;
        let pcap_s = pcap.to_string_lossy().into_owned();
        // -Z root: don't drop privileges, so tcpdump can write into the scratch dir.
        cmd.args([
            "-i",
            iface,
            "-n",
            "-e",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            &pcap_s,
        ])
        .args(filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file);
        let pid = lab.spawn(cmd)?;

        let deadline = Instant::now() + CAPTURE_START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(Capture {
                    pid,
                    iface: iface.to_string(),
                    pcap,
                    stderr,
                });
            }
            if let Some(st) = lab.wait_exit(pid, Duration::ZERO)? {
                return Err(LabError::CommandFailed {
                    cmd: format!("tcpdump -i {iface}"),
                    status: st.to_string(),
                    stderr: text.trim().to_string(),
                });
            }
            if Instant::now() >= deadline {
                lab.kill(pid);
                return Err(LabError::Timeout(format!(
                    "tcpdump on {iface} did not report `listening on` within {:?}; stderr: {}",
                    CAPTURE_START_TIMEOUT,
                    text.trim()
                )));
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// The tcpdump process id (tracked by the lab).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The interface being captured.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Stops tcpdump (after a short settle time, SIGINT by pid so it flushes, SIGKILL
    /// if it lingers) and returns everything it captured.
    pub fn stop(self, lab: &mut Lab) -> Result<Captured, LabError> {
        sleep(SETTLE);
        lab.kill_with(self.pid, libc::SIGINT, Duration::from_secs(2));
        let bytes = std::fs::read(&self.pcap).map_err(|e| {
            let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            LabError::io(
                format!("reading {} (tcpdump: {})", self.pcap.display(), err.trim()),
                e,
            )
        })?;
        let frames = parse_pcap(&bytes).ok_or_else(|| LabError::Parse {
            cmd: format!("tcpdump -w {}", self.pcap.display()),
            output: format!("not a pcap file ({} bytes)", bytes.len()),
        })?;
        let lines = read_lines(&self.pcap)?;
        Ok(Captured {
            lines,
            frames,
            pcap: self.pcap,
        })
    }
}

/// `tcpdump -r FILE -n -e`, one line per frame.
fn read_lines(pcap: &Path) -> Result<Vec<String>, LabError> {
    let out = checked(
        Command::new(tools::tool_path("tcpdump")?)
            .args(["-Z", "root", "-n", "-e", "-r"])
            .arg(pcap),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Parses a classic pcap file (either byte order, µs or ns timestamps) into its
/// frames. A truncated last record is dropped. `None` if the header is not pcap.
pub fn parse_pcap(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let magic: [u8; 4] = data.get(..4)?.try_into().ok()?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let u32_at = |off: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if data.len() < 24 {
        return None;
    }
    let mut frames = Vec::new();
    let mut off = 24usize;
    while off < data.len() {
        let Some(incl) = u32_at(off + 8) else { break };
        let start = off + 16;
        let Some(end) = start.checked_add(incl as usize) else {
            break;
        };
        let Some(frame) = data.get(start..end) else {
            break;
        };
        frames.push(frame.to_vec());
        off = end;
    }
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for f in frames {
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn pcap_roundtrip() {
        let d = pcap_le(&[b"abc", b"", b"defgh"]);
        assert_eq!(
            parse_pcap(&d).unwrap(),
            vec![b"abc".to_vec(), vec![], b"defgh".to_vec()]
        );
        // Truncated last record is dropped, never panics.
        for cut in 0..d.len() {
            let _ = parse_pcap(&d[..cut]);
        }
        assert_eq!(parse_pcap(&d[..d.len() - 1]).unwrap().len(), 2);
        assert!(parse_pcap(b"not a pcap file at all, no no no").is_none());
        assert_eq!(parse_pcap(&pcap_le(&[])).unwrap().len(), 0);
    }
}
