//! Forwarding of audit records to syslog (RFC 5424 messages over a Unix datagram
//! socket such as `/dev/log`, or UDP, RFC 5426), so that a copy of every record
//! leaves the host's disk as it is written.
//!
//! Invariant: forwarding is best effort and never blocks or fails the call being
//! audited — the local, hash-chained, fsync'd log is the record of truth; a send
//! that fails is counted (and the count shown) rather than retried.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where audit records are forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogDest {
    Unix(PathBuf),
    Udp(SocketAddr),
}

/// facility authpriv (10) × 8 + severity notice (5): security/authorization
/// messages, kept out of world-readable logs by most syslog configurations.
pub const PRI_AUTHPRIV_NOTICE: u8 = 10 * 8 + 5;

/// The largest message sent (RFC 5426 §3.2: receivers must accept 480 bytes over
/// IPv4, should accept 2048; a longer record is truncated in the copy only).
pub const MAX_MESSAGE: usize = 8192;

#[derive(Debug)]
enum Socket {
    Unix(UnixDatagram, PathBuf),
    Udp(UdpSocket, SocketAddr),
}

/// A connectionless syslog sender.
#[derive(Debug)]
pub struct SyslogForwarder {
    socket: Socket,
    hostname: String,
    pid: u32,
    /// Records that could not be sent.
    pub failed: u64,
}

impl SyslogForwarder {
    pub fn new(dest: &SyslogDest) -> std::io::Result<SyslogForwarder> {
        let socket = match dest {
            SyslogDest::Unix(p) => Socket::Unix(UnixDatagram::unbound()?, p.clone()),
            SyslogDest::Udp(a) => {
                let bind: SocketAddr = if a.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                Socket::Udp(UdpSocket::bind(bind)?, *a)
            }
        };
        match &socket {
            Socket::Unix(s, _) => s.set_nonblocking(true)?,
            Socket::Udp(s, _) => s.set_nonblocking(true)?,
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
            .unwrap_or_else(|| "-".to_string());
        Ok(SyslogForwarder {
            socket,
            hostname,
            pid: std::process::id(),
            failed: 0,
        })
    }

    /// The RFC 5424 message for one audit line (`time` is the record's RFC 3339 time).
    pub fn message(&self, time: &str, line: &str) -> Vec<u8> {
        let mut m = format!(
            "<{PRI_AUTHPRIV_NOTICE}>1 {time} {} portcullis {} audit - {}",
            self.hostname,
            self.pid,
            line.trim_end()
        )
        .into_bytes();
        m.truncate(MAX_MESSAGE);
        m
    }

    /// Sends one record; a failure is counted, never returned.
    pub fn send(&mut self, time: &str, line: &str) {
        let msg = self.message(time, line);
        let sent = match &self.socket {
            Socket::Unix(s, p) => s.send_to(&msg, p).map(|_| ()),
            Socket::Udp(s, a) => s.send_to(&msg, a).map(|_| ()),
        };
        if sent.is_err() {
            self.failed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_arrives_as_one_rfc5424_message_on_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("pcl-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let mut f = SyslogForwarder::new(&SyslogDest::Unix(path.clone())).unwrap();
        f.send("2026-11-26T22:00:00.000Z", "{\"seq\":1}\n");
        let mut buf = [0u8; 9000];
        let n = rx.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            text.starts_with("<85>1 2026-11-26T22:00:00.000Z "),
            "{text}"
        );
        assert!(text.ends_with(" audit - {\"seq\":1}"), "{text}");
        assert_eq!(f.failed, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_receiver_is_counted_not_an_error() {
        let mut f =
            SyslogForwarder::new(&SyslogDest::Unix("/nonexistent/portcullis.sock".into())).unwrap();
        f.send("2026-11-26T22:00:00.000Z", "{}");
        f.send("2026-11-26T22:00:00.000Z", "{}");
        assert_eq!(f.failed, 2);
    }

    #[test]
    fn udp_records_arrive() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut f = SyslogForwarder::new(&SyslogDest::Udp(rx.local_addr().unwrap())).unwrap();
        f.send("2026-11-26T22:00:00.000Z", &"x".repeat(MAX_MESSAGE * 2));
        let mut buf = vec![0u8; MAX_MESSAGE * 3];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, MAX_MESSAGE, "long records are truncated in the copy");
    }
}
