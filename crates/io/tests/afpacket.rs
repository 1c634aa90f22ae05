//! AF_PACKET backend against real veth pairs in network namespaces (needs root).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lab, collect, has_marker, marker, seq_of, test_frame};
use portcullis_io::afpacket::{
    AfPacketOptions, interface_exists, interface_mac, interface_mtu, is_link_up, open_af_packet,
    set_link_down, set_link_up, set_tx_checksum_offload, tx_checksum_offload,
};
use portcullis_io::{AfPacketRings, IoError, RxQueue, TxError, TxQueue, VlanTag};

const WAIT: Duration = Duration::from_secs(2);

fn open(
    ifname: &str,
) -> (
    portcullis_io::afpacket::AfPacketRx,
    portcullis_io::afpacket::AfPacketTx,
) {
    open_af_packet(ifname, &AfPacketOptions::default())
        .unwrap_or_else(|e| panic!("open_af_packet({ifname}): {e}"))
}

/// Opens the namespace end of `lab` with an RX ring of `count` blocks of `block` bytes.
fn open_in_ns_with_ring(
    lab: &Lab,
    block: u32,
    count: u32,
) -> (
    portcullis_io::afpacket::AfPacketRx,
    portcullis_io::afpacket::AfPacketTx,
) {
    let ns_if = lab.ns_if.clone();
    lab.in_ns(move || {
        let opts = AfPacketOptions {
            rx_block_size: block,
            rx_block_count: count,
            ..AfPacketOptions::default()
        };
        open_af_packet(&ns_if, &opts).unwrap()
    })
}

#[test]
fn missing_interface_is_no_such_interface() {
    match open_af_packet("nonexistent0", &AfPacketOptions::default()) {
        Err(IoError::NoSuchInterface(name)) => assert_eq!(name, "nonexistent0"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a nonexistent interface"),
    }
    assert!(matches!(
        open_af_packet("bad/name", &AfPacketOptions::default()),
        Err(IoError::InvalidName(_))
    ));
}

/// Tagged frames are sent in-band from an AF_PACKET socket in the namespace: this
/// machine's kernel has no 802.1Q support (`CONFIG_VLAN_8021Q` unset), so neither VLAN
/// subinterfaces nor VLAN-filtering bridges exist. The receive path of the host veth
/// still moves the outer tag into metadata, which is what is tested here.
#[test]
fn frames_from_the_namespace_arrive_with_tags_in_metadata() {
    let lab = Lab::new("a");
    let (mut rx, _tx) = open(&lab.host_if);
    let ns_if = lab.ns_if.clone();
    let (_ns_rx, mut ns_tx) = lab.in_ns(move || open(&ns_if));
    let m = marker(b'a');

    // Untagged from the namespace: bytes as sent, no tag.
    let (head, body) = test_frame(&m, 1, 46);
    ns_tx.push(&head, None, &body).unwrap();
    ns_tx.flush().unwrap();
    let got = collect(&mut rx, 1, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(got.len(), 1, "untagged frame not received");
    assert_eq!(got[0].0, [&head[..], &body].concat());
    assert_eq!(got[0].1, None);

    // Tagged in-band by the sender (VLAN 10, 802.1Q with priority, an 802.1ad S-tag):
    // the tag comes as metadata and is gone from the bytes.
    let vlan10 = VlanTag::dot1q(10, 0);
    let dot1q = VlanTag::dot1q(30, 5);
    let stag = VlanTag {
        tpid: 0x88a8,
        tci: 0x2123,
    };
    for (seq, t) in [(2, vlan10), (3, dot1q), (4, stag)] {
        let (head, body) = test_frame(&m, seq, 46);
        ns_tx.push(&head, Some(t), &body).unwrap();
        ns_tx.flush().unwrap();
        let got = collect(&mut rx, 1, WAIT, |d, _| has_marker(d, &m));
        assert_eq!(got.len(), 1, "tagged frame {seq} not received");
        assert_eq!(
            got[0].0,
            [&head[..], &body].concat(),
            "tag stripped from data"
        );
        assert_eq!(got[0].1, Some(t));
    }
    assert_eq!(
        collect(&mut rx, 1, Duration::from_millis(20), |d, _| has_marker(
            d, &m
        ))
        .len(),
        0
    );

    // Kernel-generated traffic from the namespace: ping's ARP request (broadcast).
    common::ip(&[
        "-n",
        &lab.ns,
        "addr",
        "add",
        "198.18.0.1/24",
        "dev",
        &lab.ns_if,
    ]);
    let mut ping = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "ping", "-c1", "-W1", "198.18.0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ping");
    let got = collect(&mut rx, 1, WAIT, |d, _| {
        d.len() >= 42
            && d[..6] == [0xff; 6]
            && d[12..14] == [0x08, 0x06]
            && d[38..42] == [198, 18, 0, 2]
    });
    let _ = ping.kill();
    let _ = ping.wait();
    assert_eq!(got.len(), 1, "no ARP request from ping");
    assert_eq!(got[0].1, None);
    assert_eq!(rx.kernel_drops(), 0);
}

#[test]
fn pushed_frames_reach_the_namespace_and_are_not_received_back() {
    let lab = Lab::new("b");
    let (mut rx, mut tx) = open(&lab.host_if);
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, _ns_tx) = lab.in_ns(move || open(&ns_if));
    let m = marker(b'b');
    assert_eq!(tx.max_frame_len(), (1514, 1518));

    let (h1, b1) = test_frame(&m, 1, 46);
    let (h2, b2) = test_frame(&m, 2, 100);
    let tag = VlanTag::dot1q(20, 3);
    // Largest frames the MTU allows, untagged and tagged.
    // (the body includes the ethertype: 12 + 1502 = MTU + 14)
    let (h3, b3) = test_frame(&m, 3, 1502);
    let (h4, b4) = test_frame(&m, 4, 1502);
    tx.push(&h1, None, &b1).unwrap();
    tx.push(&h2, Some(tag), &b2).unwrap();
    tx.push(&h3, None, &b3).unwrap();
    tx.push(&h4, Some(tag), &b4).unwrap();
    let stag = VlanTag {
        tpid: 0x88a8,
        tci: 100,
    };
    // The kernel grants the extra 4 bytes to 802.1Q frames only.
    let (h6, b6) = test_frame(&m, 6, 1502);
    assert_eq!(tx.push(&h6, Some(stag), &b6), Err(TxError::TooBig));
    let (h6, b6) = test_frame(&m, 6, 1498);
    tx.push(&h6, Some(stag), &b6).unwrap();
    let (h5, b5) = test_frame(&m, 5, 1503);
    assert_eq!(tx.push(&h5, None, &b5), Err(TxError::TooBig));
    assert_eq!(tx.push(&h5, None, &[0x88]), Err(TxError::TooBig));
    tx.flush().unwrap();

    let got = collect(&mut ns_rx, 5, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(got.len(), 5, "frames pushed on the host side missing");
    assert_eq!(got[0], ([&h1[..], &b1].concat(), None));
    assert_eq!(
        got[1],
        ([&h2[..], &b2].concat(), Some(tag)),
        "tag arrives as a tag"
    );
    assert_eq!(got[2], ([&h3[..], &b3].concat(), None));
    assert_eq!(got[3], ([&h4[..], &b4].concat(), Some(tag)));
    assert_eq!(got[4], ([&h6[..], &b6].concat(), Some(stag)));

    let back = collect(&mut rx, 1, Duration::from_millis(100), |d, _| {
        has_marker(d, &m)
    });
    assert!(
        back.is_empty(),
        "own transmissions were received back: {back:?}"
    );
    let s = tx.stats();
    assert_eq!(
        (s.sent, s.too_big, s.ring_full, s.send_errors),
        (5, 3, 0, 0)
    );
}

#[test]
fn a_full_tx_ring_is_handed_to_the_kernel_rather_than_dropping_a_frame() {
    let lab = Lab::new("c");
    let opts = AfPacketOptions {
        tx_frame_count: 32,
        ..AfPacketOptions::default()
    };
    let (_rx, mut tx) = open_af_packet(&lab.host_if, &opts).unwrap();
    assert_eq!(tx.capacity(), 32);
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, _ns_tx) = lab.in_ns(move || open(&ns_if));
    let m = marker(b'c');
    for seq in 0..32 {
        let (h, b) = test_frame(&m, seq, 60);
        tx.push(&h, None, &b).unwrap();
    }
    // The ring is full of frames not yet sent: the 33rd push flushes them first.
    let (h, b) = test_frame(&m, 99, 60);
    tx.push(&h, None, &b).unwrap();
    assert_eq!(
        tx.stats().sent,
        32,
        "the full ring went out on the 33rd push"
    );
    tx.flush().unwrap();
    let got = collect(&mut ns_rx, 33, WAIT, |d, _| has_marker(d, &m));
    let seqs: Vec<u32> = got.iter().map(|(d, _)| seq_of(d)).collect();
    let want: Vec<u32> = (0..32).chain([99]).collect();
    assert_eq!(seqs, want, "all 33, in order");
    let s = tx.stats();
    assert_eq!((s.sent, s.ring_full), (33, 0));
}

#[test]
fn bursts_span_many_blocks_in_order_without_loss() {
    let lab = Lab::new("d");
    let (_rx, mut tx) = open(&lab.host_if);
    // A ring of 512 slots: the burst of 1000 wraps it.
    let (mut ns_rx, _ns_tx) = open_in_ns_with_ring(&lab, 8192, 128);
    let m = marker(b'd');
    let mut seqs = Vec::new();
    for chunk in 0..10u32 {
        for i in 0..100 {
            let (h, b) = test_frame(&m, chunk * 100 + i, 100);
            tx.push(&h, None, &b).unwrap();
        }
        tx.flush().unwrap();
        let got = collect(&mut ns_rx, 100, WAIT, |d, _| has_marker(d, &m));
        seqs.extend(got.iter().map(|(d, _)| seq_of(d)));
    }
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
    let st = ns_rx.stats();
    assert!(st.batches >= 10, "expected many batches, got {st:?}");
    assert_eq!(st.kernel_drops, 0);
    assert_eq!(st.truncated, 0);
    assert_eq!(tx.stats().sent, 1000);
}

/// A receive ring nobody empties fills up: the kernel drops what does not fit and the
/// queue reports it as its own loss (`RxQueue::losses`, shown by the daemon as
/// `io.rx_kernel_drops`); what did fit is still delivered, in order.
#[test]
fn a_full_receive_ring_reports_the_frames_the_kernel_dropped() {
    let lab = Lab::new("r");
    let (_rx, mut tx) = open(&lab.host_if);
    // One page-sized block of 2 KiB slots: a ring of two frames.
    let (mut ns_rx, _ns_tx) = open_in_ns_with_ring(&lab, 4096, 1);
    assert_eq!(ns_rx.losses().kernel_drops, 0);
    let m = marker(b'r');
    for seq in 0..10 {
        let (h, b) = test_frame(&m, seq, 60);
        tx.push(&h, None, &b).unwrap();
    }
    tx.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let got = collect(&mut ns_rx, 2, WAIT, |d, _| has_marker(d, &m));
    let seqs: Vec<u32> = got.iter().map(|(d, _)| seq_of(d)).collect();
    assert_eq!(seqs, vec![0, 1], "the two that fit, first come");
    let l = ns_rx.losses();
    assert_eq!(
        (l.kernel_drops, l.truncated),
        (8, 0),
        "eight of ten did not fit"
    );
    assert_eq!(ns_rx.losses().kernel_drops, 8, "reading does not reset it");
}

#[test]
fn interface_helpers_report_and_change_link_state() {
    let lab = Lab::new("e");
    common::ip(&["link", "set", &lab.host_if, "address", "02:00:5e:10:00:99"]);
    common::ip(&["link", "set", &lab.host_if, "mtu", "1400"]);
    assert!(interface_exists(&lab.host_if));
    assert!(
        !interface_exists(&lab.ns_if),
        "the peer lives in the namespace"
    );
    assert_eq!(
        interface_mac(&lab.host_if).unwrap(),
        [0x02, 0, 0x5e, 0x10, 0, 0x99]
    );
    assert_eq!(interface_mtu(&lab.host_if).unwrap(), 1400);
    let (_rx, tx) = open(&lab.host_if);
    assert_eq!(tx.max_frame_len(), (1414, 1418));

    set_link_down(&lab.host_if).unwrap();
    assert!(!is_link_up(&lab.host_if).unwrap());
    set_link_up(&lab.host_if).unwrap();
    assert!(is_link_up(&lab.host_if).unwrap());
    let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", lab.host_if)).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP");
    assert_ne!(
        flags & 0x100,
        0,
        "IFF_PROMISC while the AF_PACKET socket is open"
    );

    let ns_if = lab.ns_if.clone();
    assert!(lab.in_ns(move || interface_exists(&ns_if)));
}

/// The UDP datagram to `port` in an untagged IPv4 frame, if `d` is one.
fn udp_to(d: &[u8], port: u16) -> Option<&[u8]> {
    if d.len() < 34 || d[12..14] != [0x08, 0x00] || d[23] != 17 {
        return None;
    }
    let ihl = usize::from(d[14] & 0x0f) * 4;
    let udp = d.get(14 + ihl..)?;
    (udp.len() >= 8 && udp[2..4] == port.to_be_bytes()).then_some(udp)
}

/// Whether the UDP checksum of the IPv4 frame `d` verifies (RFC 768).
fn udp_checksum_ok(d: &[u8], udp: &[u8]) -> bool {
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let mut sum = 0u32;
    let mut add = |bytes: &[u8]| {
        for c in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&d[26..34]); // source and destination address
    add(&[0, 17]);
    add(&(len as u16).to_be_bytes());
    add(&udp[..len]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// DESIGN §9: with TX checksum offload (the veth default) a local stack's frames reach
/// the peer's AF_PACKET socket with the L4 checksum unfinished; turning the offload off
/// on the sending end makes that kernel finish them.
#[test]
fn tx_checksum_offload_off_makes_the_sender_finish_checksums() {
    let lab = Lab::new("f");
    let (mut rx, _tx) = open(&lab.host_if);
    common::ip(&[
        "-n",
        &lab.ns,
        "addr",
        "add",
        "198.18.0.1/24",
        "dev",
        &lab.ns_if,
    ]);
    common::ip(&[
        "-n",
        &lab.ns,
        "neigh",
        "add",
        "198.18.0.2",
        "lladdr",
        "02:00:5e:10:00:02",
        "dev",
        &lab.ns_if,
    ]);
    let send = |port: u16| {
        lab.in_ns(move || {
            let s = std::net::UdpSocket::bind("198.18.0.1:0").unwrap();
            s.send_to(b"portcullis checksum test", ("198.18.0.2", port))
                .unwrap();
        })
    };
    let ns_if = lab.ns_if.clone();
    assert!(lab.in_ns(move || tx_checksum_offload(&ns_if)).unwrap());
    send(7001);
    let got = collect(&mut rx, 1, WAIT, |d, _| udp_to(d, 7001).is_some());
    assert_eq!(got.len(), 1, "UDP datagram not received");
    let d = &got[0].0;
    assert!(
        !udp_checksum_ok(d, udp_to(d, 7001).unwrap()),
        "expected an unfinished checksum with offload on (DESIGN §9)"
    );

    let ns_if = lab.ns_if.clone();
    let off = lab.in_ns(move || {
        set_tx_checksum_offload(&ns_if, false).and_then(|()| tx_checksum_offload(&ns_if))
    });
    assert!(!off.unwrap());
    send(7002);
    let got = collect(&mut rx, 1, WAIT, |d, _| udp_to(d, 7002).is_some());
    assert_eq!(got.len(), 1, "UDP datagram not received");
    let d = &got[0].0;
    assert!(udp_checksum_ok(d, udp_to(d, 7002).unwrap()));
}

/// Rings made before their interface (the daemon's spares) work once bound, as a
/// socket opened on the interface does: frames pushed reach the namespace, and a
/// frame from it is received. Bound to a missing interface, they are refused as such.
#[test]
fn rings_made_ahead_of_time_switch_frames_once_bound() {
    let lab = Lab::new("r");
    let rings = AfPacketRings::new(&AfPacketOptions::default(), "(spare)").unwrap();
    assert!(matches!(
        AfPacketRings::new(&AfPacketOptions::default(), "(spare)")
            .unwrap()
            .bind("pcl-nosuchif"),
        Err(IoError::NoSuchInterface(_))
    ));
    let (mut rx, mut tx) = rings.bind(&lab.host_if).unwrap();
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, mut ns_tx) = lab.in_ns(move || open(&ns_if));
    let m = marker(b'r');
    let (h, b) = test_frame(&m, 1, 60);
    tx.push(&h, None, &b).unwrap();
    tx.flush().unwrap();
    let got = collect(&mut ns_rx, 1, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(got.len(), 1, "a frame sent on the bound spare arrives");
    let (h, b) = test_frame(&m, 2, 60);
    ns_tx.push(&h, None, &b).unwrap();
    ns_tx.flush().unwrap();
    let got = collect(&mut rx, 1, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(got.len(), 1, "a frame from the namespace is received");
}
