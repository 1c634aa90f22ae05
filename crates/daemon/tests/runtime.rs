//! The data-plane thread on in-memory ports: frames injected on one port come out
//! of the right ports with the right 802.1Q encapsulation (tags inserted, stripped,
//! PCP kept), and the control commands answer between batches. No root needed.

mod common;

use common::{G1, G2, eth, start_data_plane, three_port_switch};
use portcullis_io::VlanTag;

const ROUTER: [u8; 6] = [0, 0x1b, 0x21, 0, 0, 9];
const IPV4: u16 = 0x0800;

#[test]
fn frames_leave_with_the_right_encapsulation() {
    // Ports: 0 uplink (trunk 10, native 1), 1 g1 and 2 g2 (access 10).
    let sw = start_data_plane(&three_port_switch());
    let payload = [0xabu8; 46];

    // A broadcast from g1: g2 gets it untagged, the uplink tagged 10 (PCP 0).
    let bcast = eth([0xff; 6], G1, None, IPV4, &payload);
    sw.handles[1].inject(&bcast, None);
    assert_eq!(sw.next_tx(2), bcast);
    assert_eq!(
        sw.next_tx(0),
        eth(
            [0xff; 6],
            G1,
            Some([0x81, 0x00, 0x00, 0x0a]),
            IPV4,
            &payload
        )
    );

    // A priority-tagged frame (VID 0, PCP 3) from g1 to an unknown MAC: to the uplink,
    // tagged 10 with PCP 3 kept.
    sw.handles[1].inject(
        &eth(ROUTER, G1, Some([0x81, 0x00, 0x60, 0x00]), IPV4, &payload),
        None,
    );
    assert_eq!(
        sw.next_tx(0),
        eth(ROUTER, G1, Some([0x81, 0x00, 0x60, 0x0a]), IPV4, &payload)
    );

    // From the uplink, tag in metadata (as AF_PACKET on veth hands it over): to g2 untagged.
    let from_router = eth(G2, ROUTER, None, IPV4, &payload);
    sw.handles[0].inject(
        &from_router,
        Some(VlanTag {
            tpid: 0x8100,
            tci: 0xa00a,
        }),
    );
    assert_eq!(sw.next_tx(2), from_router);

    // From the uplink, tag in-band: to g1 with the tag stripped.
    sw.handles[0].inject(
        &eth(G1, ROUTER, Some([0x81, 0x00, 0x00, 0x0a]), IPV4, &payload),
        None,
    );
    assert_eq!(sw.next_tx(1), eth(G1, ROUTER, None, IPV4, &payload));

    // A forged frame from g2 goes nowhere.
    sw.handles[2].inject(
        &eth(G1, [0x52, 0x54, 0, 0, 0, 66], None, IPV4, &payload),
        None,
    );

    let snap = sw.snapshot();
    let port = |n: &str| snap.ports.iter().find(|p| p.name == n).unwrap().clone();
    assert_eq!(
        port("g2").counters.rx_drops.get("forged_transmit"),
        Some(&1)
    );
    assert_eq!(port("g1").counters.rx_frames, 2);
    assert_eq!(port("uplink").counters.tx_frames, 2);
    assert_eq!(port("uplink").counters.rx_frames, 2);
    assert_eq!(port("g1").uplink.as_deref(), Some("uplink"));
    assert_eq!(snap.drops.get("forged_transmit"), Some(&1));
    assert_eq!(
        snap.mac_table
            .entries
            .iter()
            .filter(|e| e.kind == "learned")
            .count(),
        1,
        "the router"
    );
    sw.assert_no_stray_copies();
}

/// A port whose backend knows its own link (as a vhost-user port does: up while a
/// frontend runs its rings), switched from the test.
struct OwnLink {
    inner: Box<dyn portcullis_io::RxQueue>,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl portcullis_io::RxQueue for OwnLink {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.fd()
    }
    fn recv(&mut self) -> Result<portcullis_io::RxBatch<'_>, portcullis_io::IoError> {
        self.inner.recv()
    }
    fn link_up(&self) -> Option<bool> {
        Some(self.up.load(std::sync::atomic::Ordering::Relaxed))
    }
}

#[test]
fn a_port_whose_backend_knows_its_link_follows_it_and_frames_to_it_drop_as_port_down() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = std::sync::Arc::new(AtomicBool::new(false));
    let sw = common::start_data_plane_wrapped(&three_port_switch(), |i, rx| {
        if i == 2 {
            Box::new(OwnLink {
                inner: rx,
                up: up.clone(),
            })
        } else {
            rx
        }
    });
    let state = |s: &portcullis_daemon::snapshot::Snapshot| s.ports[2].state.clone();
    // No frontend: g2 goes link-down at the next link check (at most a second).
    sw.snapshot_when(|s| state(s) == "link-down");
    let payload = [0xabu8; 46];
    let to_g2 = eth(G2, G1, None, IPV4, &payload);
    sw.handles[1].inject(&to_g2, None);
    let s = sw.snapshot_when(|s| s.ports[2].counters.tx_drops.get("port_down") == Some(&1));
    assert_eq!(s.ports[2].counters.tx_frames, 0);
    sw.assert_no_stray_copies();
    // The frontend's rings run: up, and frames reach it.
    up.store(true, Ordering::Relaxed);
    sw.snapshot_when(|s| state(s) == "up");
    sw.handles[1].inject(&to_g2, None);
    assert_eq!(sw.next_tx(2), to_g2);
    // It goes away again: down again.
    up.store(false, Ordering::Relaxed);
    sw.snapshot_when(|s| state(s) == "link-down");
    sw.handles[1].inject(&to_g2, None);
    sw.snapshot_when(|s| s.ports[2].counters.tx_drops.get("port_down") == Some(&2));
    sw.assert_no_stray_copies();
}
