//! AF_XDP backend against real veth pairs in network namespaces (needs root), in both
//! XDP modes: frames both ways, in-band tags moved to metadata like AF_PACKET, batches
//! larger than one copy-mode kick, and nothing left attached after the port closes.
//! veth has no zero-copy: in native mode the zero-copy bind is refused and the socket
//! ends up in copy mode; in skb mode it is bound in copy mode directly.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Lab, collect, has_marker, marker, seq_of, test_frame};
use portcullis_io::af_xdp::XdpBindMode;
use portcullis_io::afpacket::{AfPacketOptions, open_af_packet};
use portcullis_io::{AfXdpOptions, RxQueue, TxQueue, VlanTag, XdpMode, open_af_xdp};

const WAIT: Duration = Duration::from_secs(2);

fn xdp_attached(ifname: &str) -> bool {
    let out = Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

fn both_ways(tag: &str, mode: XdpMode) {
    let lab = Lab::new(tag);
    let opts = AfXdpOptions {
        mode,
        ..AfXdpOptions::default()
    };
    let (mut rx, mut tx) = open_af_xdp(&lab.host_if, &opts)
        .unwrap_or_else(|e| panic!("open_af_xdp({}, {mode:?}): {e}", lab.host_if));
    assert_eq!(rx.mode(), mode);
    // veth has no zero-copy: native mode tried it and fell back, skb mode never tried.
    assert_eq!(rx.xdp_bind_mode(), XdpBindMode::Copy, "{mode:?}");
    assert_eq!(tx.xdp_bind_mode(), XdpBindMode::Copy, "{mode:?}");
    assert!(xdp_attached(&lab.host_if), "program attached while open");
    let ns_if = lab.ns_if.clone();
    let (mut ns_rx, mut ns_tx) = lab.in_ns(move || {
        open_af_packet(&ns_if, &AfPacketOptions::default()).expect("AF_PACKET in the namespace")
    });
    let m = marker(tag.as_bytes()[0]);

    // Namespace → AF_XDP: untagged, then tagged in-band (802.1Q, 802.1ad).
    let stag = VlanTag {
        tpid: 0x88a8,
        tci: 0x2123,
    };
    for (seq, t) in [
        (1, None),
        (2, Some(VlanTag::dot1q(10, 0))),
        (3, Some(VlanTag::dot1q(30, 5))),
        (4, Some(stag)),
    ] {
        let (head, body) = test_frame(&m, seq, 46);
        ns_tx.push(&head, t, &body).unwrap();
        ns_tx.flush().unwrap();
        let got = collect(&mut rx, 1, WAIT, |d, _| has_marker(d, &m));
        assert_eq!(got.len(), 1, "frame {seq} not received over AF_XDP");
        assert_eq!(got[0].0, [&head[..], &body].concat(), "frame {seq} bytes");
        assert_eq!(got[0].1, t, "frame {seq} tag");
    }

    // AF_XDP → namespace: 300 frames in one flush (more than one copy-mode kick).
    for seq in 0..300 {
        let (head, body) = test_frame(&m, seq, 60);
        tx.push(&head, None, &body).unwrap();
    }
    tx.flush().unwrap();
    let got = collect(&mut ns_rx, 300, WAIT, |d, _| has_marker(d, &m));
    let seqs: Vec<u32> = got.iter().map(|(d, _)| seq_of(d)).collect();
    assert_eq!(seqs, (0..300).collect::<Vec<_>>(), "all frames, in order");
    assert_eq!(tx.stats().sent, 300);

    // A tagged frame goes out with its tag in-band (the receiving AF_PACKET moves it
    // to metadata).
    let (head, body) = test_frame(&m, 1000, 46);
    tx.push(&head, Some(VlanTag::dot1q(20, 0)), &body).unwrap();
    tx.flush().unwrap();
    let got = collect(&mut ns_rx, 1, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, Some(VlanTag::dot1q(20, 0)));
    assert!(rx.stats().frames >= 4);

    drop(rx);
    assert!(
        xdp_attached(&lab.host_if),
        "still attached while the TX half lives"
    );
    drop(tx);
    assert!(
        !xdp_attached(&lab.host_if),
        "program detached once both halves are gone"
    );
    // The interface can take a program again (nothing left behind).
    let again = open_af_xdp(&lab.host_if, &opts).expect("reopen");
    drop(again);
    assert!(!xdp_attached(&lab.host_if));
}

#[test]
fn skb_mode_both_ways_and_detach() {
    both_ways("s", XdpMode::Skb);
}

#[test]
fn native_mode_both_ways_and_detach() {
    both_ways("d", XdpMode::Native);
}

#[test]
fn second_program_on_the_same_interface_is_refused() {
    let lab = Lab::new("b");
    let first = open_af_xdp(&lab.host_if, &AfXdpOptions::default()).expect("first");
    let e = open_af_xdp(&lab.host_if, &AfXdpOptions::default()).unwrap_err();
    assert!(e.raw_os_error().is_some(), "{e}");
    drop(first);
    assert!(!xdp_attached(&lab.host_if));
}

/// The kernel flags ENETDOWN on an AF_XDP socket whose interface is deleted
/// (`take_error`), but — unlike AF_PACKET — poll(2) does not report POLLERR for it.
#[test]
fn a_vanished_interface_leaves_enetdown_for_take_error() {
    let lab = Lab::new("g");
    let (mut rx, _tx) = open_af_xdp(&lab.host_if, &AfXdpOptions::default()).expect("open");
    assert!(
        rx.take_error().is_none(),
        "no error while the interface is there"
    );
    common::ip(&["link", "del", &lab.host_if]);
    let err = rx
        .take_error()
        .expect("an error once the interface is gone");
    assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN), "{err}");
    assert!(rx.take_error().is_none(), "taking the error clears it");
    let batch = rx.recv().expect("recv still works on the orphaned socket");
    assert!(batch.is_empty());
}

/// What becomes of a GSO super-frame (a TSO sender's 20 KB TCP segment, sent whole
/// over the veth) in each XDP mode. Native: veth takes GSO away from its peer while
/// a non-frags XDP program is attached, so the sender's socket segments it itself and
/// MTU-sized frames arrive. Skb (generic) mode: the super-frame reaches the program
/// linearised, as one frame too big for a UMEM chunk, and the kernel drops it.
fn super_frame_over(tag: &str, mode: XdpMode) -> (usize, u64) {
    let lab = Lab::new(tag);
    let (mut rx, _tx) = open_af_xdp(
        &lab.host_if,
        &AfXdpOptions {
            mode,
            ..AfXdpOptions::default()
        },
    )
    .expect("open");
    let ns_if = lab.ns_if.clone();
    let (_ns_rx, mut ns_tx) = lab.in_ns(move || {
        open_af_packet(&ns_if, &AfPacketOptions::default()).expect("AF_PACKET in the namespace")
    });
    let f = common::super_frame(false, 40_001, 20_000, 0x18);
    let opts = portcullis_io::TxOptions {
        offload: Some(common::gso(false, 1448)),
        ..Default::default()
    };
    ns_tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
    ns_tx.flush().unwrap();
    let got = collect(&mut rx, 14, WAIT, |d, _| common::from_port(d, 40_001));
    (got.len(), rx.stats().kernel_drops)
}

#[test]
fn gso_super_frames_per_mode() {
    let (native, native_drops) = super_frame_over("n", XdpMode::Native);
    let (skb, skb_drops) = super_frame_over("k", XdpMode::Skb);
    assert_eq!(
        (native, native_drops),
        (14, 0),
        "native: the sender segmented the super-frame (20000 / 1448 → 14 segments)"
    );
    assert_eq!(
        (skb, skb_drops),
        (0, 1),
        "skb mode: the super-frame is one frame too big for a chunk, dropped and counted"
    );
}
