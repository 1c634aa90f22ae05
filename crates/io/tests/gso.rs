//! Offloads through real AF_PACKET sockets on veth pairs (needs root): software
//! segmentation compared with the kernel's own, super-frames handed on whole with
//! their virtio-net header, and segmentation for a port whose interface does no TSO.
//!
//! The kernel reference (`software_segments_match_the_kernels`): the super-frame is
//! sent from the namespace with a GSO virtio-net header by a plain packet socket the
//! test opens itself (`PACKET_VNET_HDR`, `sendmsg`; none of this crate's TX code) on
//! a veth whose TSO and TX checksum offload are off, so the kernel segments it
//! (`validate_xmit_skb` → `skb_gso_segment`) and computes every checksum in
//! software; the segments are captured on the other end (GRO off there, so they stay
//! apart) and compared byte for byte with what [`Segmenter`] makes of the same
//! super-frame.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use common::{Lab, collect, fold, from_port, gso, sum16, super_frame};
use portcullis_io::afpacket::{
    AfPacketOptions, interface_index, open_af_packet, set_tcp_segmentation_offload,
    set_tx_checksum_offload, tcp_segmentation_offload,
};
use portcullis_io::{RxQueue, Segmenter, TxOptions, TxQueue, VnetHdr};

const WAIT: Duration = Duration::from_secs(2);

fn ethtool(ns: Option<&str>, args: &[&str]) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    };
    let out = cmd
        .args(args)
        .output()
        .expect("ethtool (Debian package ethtool; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ethtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A packet socket of the calling thread's namespace bound to `ifname`, sending
/// with virtio-net headers: the kernel's own GSO path, without this crate's code.
fn kernel_gso_socket(ifname: &str) -> OwnedFd {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_VNET_HDR,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "PACKET_VNET_HDR: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: all-zero is a valid `sockaddr_ll`.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = interface_index(ifname).unwrap() as i32;
    // SAFETY: `sll` is a valid `sockaddr_ll` and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    fd
}

/// Sends `frame` with the virtio-net header `h` (one `send` of header + frame).
fn kernel_send(fd: &OwnedFd, h: VnetHdr, frame: &[u8]) {
    let buf = [&h.to_bytes()[..], frame].concat();
    // SAFETY: `buf` is a live buffer of `buf.len()` bytes; send(2) only reads it.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    assert_eq!(
        n,
        buf.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

fn segments_by_us(frame: &[u8], req: VnetHdr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    Segmenter::new()
        .segment_frame(frame, req, |s| {
            out.push(s.to_vec());
            Ok(())
        })
        .expect("segment");
    out
}

#[test]
fn software_segments_match_the_kernels() {
    let lab = Lab::new("g");
    ethtool(None, &["-K", &lab.host_if, "gro", "off"]);
    let (mut rx, _tx) = open_af_packet(&lab.host_if, &AfPacketOptions::default()).unwrap();
    let ns_if = lab.ns_if.clone();
    let sender = lab.in_ns(move || {
        assert!(
            tcp_segmentation_offload(&ns_if).unwrap(),
            "veth default: TSO on"
        );
        // Make the kernel segment and checksum super-frames itself.
        set_tcp_segmentation_offload(&ns_if, false).unwrap();
        set_tx_checksum_offload(&ns_if, false).unwrap();
        assert!(!tcp_segmentation_offload(&ns_if).unwrap());
        kernel_gso_socket(&ns_if)
    });
    let cases = [
        (false, 40001, 20_000, 1448, 0x18),
        (false, 40002, 7_777, 1000, 0x19), // FIN+PSH+ACK, last segment short
        (false, 40003, 64_000, 1448, 0x10),
        (true, 40004, 20_000, 1428, 0x18),
        (true, 40005, 3_001, 500, 0x99), // CWR+FIN+PSH+ACK
    ];
    for (ipv6, sport, payload, mss, flags) in cases {
        let f = super_frame(ipv6, sport, payload, flags);
        let mut h = gso(ipv6, mss);
        (h.csum_start, h.csum_offset) = (if ipv6 { 54 } else { 34 }, 16);
        h.hdr_len = h.csum_start + 32;
        kernel_send(&sender, h, &f);
        let ours = segments_by_us(&f, gso(ipv6, mss));
        assert_eq!(ours.len(), payload.div_ceil(usize::from(mss)));
        let kernel = collect(&mut rx, ours.len(), WAIT, |d, _| from_port(d, sport));
        assert_eq!(
            kernel.len(),
            ours.len(),
            "case {sport}: the kernel's segment count"
        );
        for (i, (k, o)) in kernel.iter().zip(&ours).enumerate() {
            assert_eq!(
                &k.0, o,
                "case {sport}: segment {i} differs from the kernel's"
            );
        }
    }
}

#[test]
fn super_frames_cross_whole_to_a_port_that_takes_them() {
    let lab = Lab::new("h");
    assert!(tcp_segmentation_offload(&lab.host_if).unwrap());
    let (_rx, mut tx) = open_af_packet(&lab.host_if, &AfPacketOptions::default()).unwrap();
    assert!(tx.vnet_hdr() && tx.takes_gso());
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, _ns_tx) =
        lab.in_ns(move || open_af_packet(&ns_if, &AfPacketOptions::default()).unwrap());
    assert!(ns_rx.vnet_hdr());
    // A small frame before and after: the super-frame (sent by sendmsg on the
    // second socket) must not overtake the one queued in the ring before it.
    let small = super_frame(false, 41000, 100, 0x18);
    let big = super_frame(false, 41001, 30_000, 0x18);
    let small2 = super_frame(false, 41002, 100, 0x18);
    tx.push(&small[..12], None, &small[12..]).unwrap();
    let opts = TxOptions {
        offload: Some(gso(false, 1448)),
        ..TxOptions::default()
    };
    tx.push_with(&big[..12], None, &big[12..], opts).unwrap();
    tx.push(&small2[..12], None, &small2[12..]).unwrap();
    tx.flush().unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < 3 && std::time::Instant::now() < deadline {
        let batch = ns_rx.recv().unwrap();
        for f in batch.iter() {
            if (41000..=41002).any(|p| from_port(f.data, p)) {
                got.push((f.data.to_vec(), f.vnet));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ports: Vec<u16> = got
        .iter()
        .map(|(d, _)| u16::from_be_bytes([d[34], d[35]]))
        .collect();
    assert_eq!(ports, vec![41000, 41001, 41002], "arrival order");
    let (data, vnet) = &got[1];
    assert_eq!(data, &big, "the super-frame arrives whole, bytes unchanged");
    let v = vnet.expect("vnet header");
    assert_eq!(v.gso_kind(), VnetHdr::GSO_TCPV4);
    assert_eq!(v.gso_size, 1448);
    assert!(v.needs_csum());
    assert_eq!((v.csum_start, v.csum_offset), (34, 16));
    assert_eq!(tx.stats().gso_whole, 1);
    assert_eq!(ns_rx.stats().gso_frames, 1);
    assert_eq!(ns_rx.stats().truncated, 0, "the copy path took it whole");
}

/// RX slots are 2 KiB: every super-frame arrives by the kernel's copy path (the
/// socket's receive queue) while small frames arrive in the ring. A burst mixing the
/// two comes out whole and in the order it was sent.
#[test]
fn a_burst_of_super_frames_and_small_frames_keeps_its_order() {
    let lab = Lab::new("k");
    let (_rx, mut tx) = open_af_packet(&lab.host_if, &AfPacketOptions::default()).unwrap();
    assert!(tx.takes_gso());
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, _ns_tx) =
        lab.in_ns(move || open_af_packet(&ns_if, &AfPacketOptions::default()).unwrap());
    let opts = TxOptions {
        offload: Some(gso(false, 1448)),
        ..TxOptions::default()
    };
    let mut sent = Vec::new();
    for i in 0..40u16 {
        let port = 42000 + i;
        if i % 2 == 0 {
            let big = super_frame(false, port, 20_000 + usize::from(i) * 500, 0x18);
            tx.push_with(&big[..12], None, &big[12..], opts).unwrap();
            sent.push(big);
        } else {
            let small = super_frame(false, port, 100, 0x18);
            tx.push(&small[..12], None, &small[12..]).unwrap();
            sent.push(small);
        }
    }
    tx.flush().unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < sent.len() && std::time::Instant::now() < deadline {
        let batch = ns_rx.recv().unwrap();
        for f in batch.iter() {
            if (42000..42040).any(|p| from_port(f.data, p)) {
                got.push(f.data.to_vec());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), sent.len(), "every frame arrived");
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(g, s, "frame {i}: whole, unchanged, in order");
    }
    let st = ns_rx.stats();
    assert_eq!((st.gso_frames, st.truncated, st.kernel_drops), (20, 0, 0));
}

#[test]
fn a_port_without_tso_gets_segments_with_valid_checksums() {
    let lab = Lab::new("i");
    set_tcp_segmentation_offload(&lab.host_if, false).unwrap();
    let (_rx, mut tx) = open_af_packet(&lab.host_if, &AfPacketOptions::default()).unwrap();
    assert!(tx.vnet_hdr() && !tx.takes_gso());
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, _ns_tx) =
        lab.in_ns(move || open_af_packet(&ns_if, &AfPacketOptions::default()).unwrap());
    for ipv6 in [false, true] {
        let sport = 42000 + u16::from(ipv6);
        let f = super_frame(ipv6, sport, 10_000, 0x19);
        let opts = TxOptions {
            offload: Some(gso(ipv6, 1400)),
            ..TxOptions::default()
        };
        tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
        tx.flush().unwrap();
        let want = segments_by_us(&f, gso(ipv6, 1400));
        assert_eq!(want.len(), 8);
        let got = collect(&mut ns_rx, want.len(), WAIT, |d, _| from_port(d, sport));
        let got: Vec<Vec<u8>> = got.into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, want);
        // Independent check: every TCP checksum verifies (sum over pseudo-header and
        // segment is all ones).
        for s in &got {
            let (l4, addrs) = if ipv6 {
                (54, &s[22..54])
            } else {
                (34, &s[26..34])
            };
            let len = s.len() - l4;
            let total = sum16(addrs) + 6 + len as u32 + sum16(&s[l4..]);
            assert_eq!(fold(total), 0xffff, "TCP checksum of a segment");
        }
    }
    // A super-frame too big for the interface's MTU in segments: each refused.
    let f = super_frame(false, 42010, 5_000, 0x10);
    let opts = TxOptions {
        offload: Some(gso(false, 3000)),
        ..TxOptions::default()
    };
    assert_eq!(
        tx.push_with(&f[..12], None, &f[12..], opts),
        Err(portcullis_io::TxError::TooBig)
    );
    assert_eq!(tx.stats().gso_segments, 16);
    assert_eq!(tx.stats().gso_whole, 0);

    // TSO turned on later (as when QEMU attaches to a TAP with offloads): read
    // again at most a second later, super-frames then go whole.
    set_tcp_segmentation_offload(&lab.host_if, true).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let f = super_frame(false, 42020, 5_000, 0x10);
    tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
    tx.flush().unwrap();
    assert!(tx.takes_gso());
    let got = collect(&mut ns_rx, 1, WAIT, |d, _| from_port(d, 42020));
    assert_eq!(got.len(), 1, "one frame: the super-frame, whole");
    assert_eq!(got[0].0, f);
    assert_eq!(tx.stats().gso_whole, 1);
}
