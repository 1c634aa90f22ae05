//! Helpers for the root-only integration tests: a network namespace with a veth pair
//! (removed on drop, even when the test fails), running code inside a namespace, test
//! frames and waiting for them.
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_io::{RxQueue, VlanTag, VnetHdr};

/// Fails (never skips) when not root or when iproute2 is missing.
pub fn require_root() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "portcullis-io integration tests create network namespaces, veth pairs and TAPs and \
         open AF_PACKET sockets: they must run as root (they are not skipped)"
    );
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "the `ip` command (iproute2) is required"
    );
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS`, ignoring failures (cleanup).
pub fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// Disables IPv6 on an interface of the calling thread's namespace, so the kernel does
/// not send router solicitations/MLD on it (noise for the tests; they filter anyway).
pub fn disable_ipv6(ifname: &str) {
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
        "1",
    );
}

/// A namespace `ns` holding `ns_if`, the peer of the host-side veth `host_if`. Both
/// ends are up. Dropping it deletes the host veth (and with it the peer) and the
/// namespace.
pub struct Lab {
    pub ns: String,
    pub host_if: String,
    pub ns_if: String,
}

impl Lab {
    /// `tag` (one character) keeps the names of concurrently running tests apart.
    pub fn new(tag: &str) -> Lab {
        require_root();
        let pid = std::process::id();
        let lab = Lab {
            ns: format!("pio{pid}{tag}"),
            host_if: format!("pio{pid}{tag}h"),
            ns_if: format!("pio{pid}{tag}n"),
        };
        assert!(
            lab.ns_if.len() + 3 <= 15,
            "names too long for a .10 subinterface"
        );
        // Leftovers of a crashed earlier run with the same pid.
        ip_quiet(&["link", "del", &lab.host_if]);
        ip_quiet(&["netns", "del", &lab.ns]);
        ip(&["netns", "add", &lab.ns]);
        ip(&[
            "link",
            "add",
            &lab.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &lab.ns_if,
            "netns",
            &lab.ns,
        ]);
        disable_ipv6(&lab.host_if);
        let ns_if = lab.ns_if.clone();
        lab.in_ns(move || disable_ipv6(&ns_if));
        ip(&["link", "set", &lab.host_if, "up"]);
        ip(&["-n", &lab.ns, "link", "set", &lab.ns_if, "up"]);
        lab
    }

    /// Runs `f` on a fresh thread that has entered the lab's namespace. Sockets opened
    /// there stay in the namespace after the thread ends.
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.ns, f)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.host_if]);
        ip_quiet(&["netns", "del", &self.ns]);
    }
}

/// Runs `f` on a fresh thread inside the named network namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) with a valid namespace fd on this thread only (a network
        // namespace may be entered by one thread of a multi-threaded process).
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("thread in the namespace panicked")
}

/// A test frame: addresses and a body with ethertype 0x88b5 (local experimental),
/// `marker` and a sequence number, padded to `len` body bytes (at least 46).
pub fn test_frame(marker: &[u8; 8], seq: u32, body_len: usize) -> ([u8; 12], Vec<u8>) {
    let head = [0x02, 0, 0x5e, 0x10, 0, 1, 0x02, 0, 0x5e, 0x10, 0, 2];
    let mut body = vec![0x88, 0xb5];
    body.extend_from_slice(marker);
    body.extend_from_slice(&seq.to_be_bytes());
    body.resize(body_len.max(46), 0xa5);
    (head, body)
}

/// A marker unique to this process and `tag`.
pub fn marker(tag: u8) -> [u8; 8] {
    let pid = std::process::id().to_be_bytes();
    [b'P', b'I', b'O', tag, pid[0], pid[1], pid[2], pid[3]]
}

/// Whether untagged frame bytes carry `marker` (ethertype 0x88b5 first).
pub fn has_marker(data: &[u8], marker: &[u8; 8]) -> bool {
    data.len() >= 26 && data[12..14] == [0x88, 0xb5] && data[14..22] == marker[..]
}

/// The sequence number of a test frame.
pub fn seq_of(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[22..26].try_into().unwrap())
}

/// Polls `rx` until `want` frames matching `pred` arrived or `timeout` passed; returns
/// the matching frames (bytes and tag) in arrival order.
pub fn collect<R: RxQueue + ?Sized>(
    rx: &mut R,
    want: usize,
    timeout: Duration,
    pred: impl Fn(&[u8], Option<VlanTag>) -> bool,
) -> Vec<(Vec<u8>, Option<VlanTag>)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let batch = rx.recv().expect("recv");
        for f in batch.iter() {
            if pred(f.data, f.tag) {
                got.push((f.data.to_vec(), f.tag));
            }
        }
        if got.len() >= want || Instant::now() >= deadline {
            return got;
        }
        if batch.is_empty() {
            wait_readable(rx.fd(), Duration::from_millis(5));
        }
    }
}

fn wait_readable(fd: Option<std::os::fd::RawFd>, timeout: Duration) {
    let Some(fd) = fd else {
        std::thread::sleep(timeout);
        return;
    };
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int);
    }
}

/// Sum of 16-bit words (RFC 1071), not complemented.
pub fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// A TCP super-frame as a sender with TSO hands it over: IP lengths for the whole
/// payload, checksum field = pseudo-header sum. `sport` tells test frames apart.
pub fn super_frame(ipv6: bool, sport: u16, payload: usize, flags: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0x5e, 0x10, 0, 2, 0x02, 0, 0x5e, 0x10, 0, 1];
    let tcp_hlen = 32;
    let l4_len = tcp_hlen + payload;
    let pseudo_addrs = if ipv6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        f.extend_from_slice(&a);
        f.extend_from_slice(&b);
        [&a[..], &b[..]].concat()
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&[
            0xab, 0xcd, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ]);
        let c = !fold(sum16(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[26..34].to_vec()
    };
    let l4 = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    f.extend_from_slice(&0x1000_0000u32.to_be_bytes());
    f.extend_from_slice(&99u32.to_be_bytes());
    f.extend_from_slice(&[(tcp_hlen as u8 / 4) << 4, flags, 0x01, 0xf5, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend((0..payload).map(|i| (i % 253) as u8));
    let pseudo = fold(sum16(&pseudo_addrs) + 6 + l4_len as u32);
    f[l4 + 16..l4 + 18].copy_from_slice(&pseudo.to_be_bytes());
    f
}

pub fn gso(ipv6: bool, mss: u16) -> VnetHdr {
    VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: if ipv6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        },
        gso_size: mss,
        ..VnetHdr::default()
    }
}

/// Whether `d` is a TCP frame from `sport` (IPv4 or IPv6, untagged).
pub fn from_port(d: &[u8], sport: u16) -> bool {
    let l4 = match d.get(12..14) {
        Some([0x08, 0x00]) => 34,
        Some([0x86, 0xdd]) => 54,
        _ => return false,
    };
    d.get(l4..l4 + 2) == Some(&sport.to_be_bytes()[..])
}
