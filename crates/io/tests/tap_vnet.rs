//! TAP with virtio-net headers (`IFF_VNET_HDR` + `TUNSETOFFLOAD`) against real TAP
//! interfaces (needs root): super-frames cross whole in both directions, plain
//! frames still flow, and the kernel sees the TAP as doing TSO.

mod common;

use std::time::Duration;

use common::{collect, from_port, gso, require_root, super_frame};
use portcullis_io::afpacket::{AfPacketOptions, open_af_packet};
use portcullis_io::tap::{TapOptions, create_tap_with};
use portcullis_io::{RxQueue, TxOptions, TxQueue, VnetHdr, set_link_up, tcp_segmentation_offload};

const WAIT: Duration = Duration::from_secs(2);

/// Deletes the TAP on drop (it may already be gone).
struct TapGuard(String);

impl Drop for TapGuard {
    fn drop(&mut self) {
        common::ip_quiet(&["link", "del", &self.0]);
    }
}

/// Reads `rx` until a frame from `sport` arrives; returns its bytes and header.
fn one_from<R: RxQueue>(rx: &mut R, sport: u16) -> Option<(Vec<u8>, Option<VnetHdr>)> {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let batch = rx.recv().unwrap();
        if let Some(f) = batch.iter().find(|f| from_port(f.data, sport)) {
            return Some((f.data.to_vec(), f.vnet));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn super_frames_cross_a_vnet_tap_whole_both_ways() {
    require_root();
    let guard = TapGuard(format!("piov{}a", std::process::id()));
    common::ip_quiet(&["link", "del", &guard.0]);
    let name = guard.0.clone();
    let (mut trx, mut ttx) = create_tap_with(&name, &TapOptions { vnet_hdr: true }).unwrap();
    common::disable_ipv6(&name);
    set_link_up(&name).unwrap();
    assert!(
        tcp_segmentation_offload(&name).unwrap(),
        "TUNSETOFFLOAD gives the TAP netdev TSO"
    );
    let (mut arx, mut atx) = open_af_packet(&name, &AfPacketOptions::default()).unwrap();
    assert!(atx.takes_gso());

    // Kernel → switch: a super-frame sent on the TAP netdev is read whole, with its
    // header, from the tun fd.
    let f = super_frame(false, 44001, 20_000, 0x18);
    let opts = TxOptions {
        offload: Some(gso(false, 1448)),
        ..TxOptions::default()
    };
    atx.push_with(&f[..12], None, &f[12..], opts).unwrap();
    atx.flush().unwrap();
    let (data, vnet) = one_from(&mut trx, 44001).expect("super-frame read from the TAP");
    assert_eq!(data, f);
    let v = vnet.expect("header");
    assert_eq!((v.gso_kind(), v.gso_size), (VnetHdr::GSO_TCPV4, 1448));
    assert!(v.needs_csum());
    assert_eq!(trx.stats().gso_frames, 1);

    // Switch → kernel: written whole with a header, received whole by the kernel.
    let f6 = super_frame(true, 44002, 30_000, 0x18);
    let opts6 = TxOptions {
        offload: Some(gso(true, 1428)),
        ..TxOptions::default()
    };
    ttx.push_with(&f6[..12], None, &f6[12..], opts6).unwrap();
    ttx.flush().unwrap();
    let (data, vnet) = one_from(&mut arx, 44002).expect("super-frame received by the kernel");
    assert_eq!(data, f6);
    let v = vnet.expect("header");
    assert_eq!((v.gso_kind(), v.gso_size), (VnetHdr::GSO_TCPV6, 1428));
    assert_eq!(ttx.stats().gso_whole, 1);
    assert_eq!(ttx.stats().gso_segments, 0);

    // Plain frames still cross, with an all-zero header.
    let small = super_frame(false, 44003, 100, 0x18);
    ttx.push(&small[..12], None, &small[12..]).unwrap();
    ttx.flush().unwrap();
    let got = collect(&mut arx, 1, WAIT, |d, _| from_port(d, 44003));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, small);
    atx.push(&small[..12], None, &small[12..]).unwrap();
    atx.flush().unwrap();
    let (data, vnet) = one_from(&mut trx, 44003).expect("plain frame from the TAP");
    assert_eq!(data, small);
    assert!(!vnet.expect("header").is_gso());
}
