//! The data-plane thread on in-memory ports: frames injected on one port come out
//! of the right ports with the right 802.1Q encapsulation (tags inserted, stripped,
//! PCP kept), and the control commands answer between batches. No root needed.

use portcullis_daemon::runtime::{Command, DataPlane, LinkState, PortIo, PortLinks};
use portcullis_daemon::snapshot::Snapshot;
use portcullis_dataplane::*;
use portcullis_io::{MemoryHandle, VlanTag, memory_port};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as WallClock};

struct AlwaysUp;
impl PortLinks for AlwaysUp {
    fn state(&self, _: usize) -> LinkState {
        LinkState::Up
    }
    fn reopen(&self, _: usize) -> Result<PortIo, String> {
        Err("memory ports do not go away".into())
    }
}

const G1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const G2: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];
const ROUTER: [u8; 6] = [0, 0x1b, 0x21, 0, 0, 9];

fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

struct Running {
    handles: Vec<MemoryHandle>,
    commands: std::sync::mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Running {
    /// Waits for the next frame transmitted on port `i`.
    fn next_tx(&self, i: usize) -> Vec<u8> {
        let deadline = WallClock::now() + Duration::from_secs(5);
        loop {
            let mut tx = self.handles[i].take_transmitted();
            if !tx.is_empty() {
                assert_eq!(tx.len(), 1, "exactly one copy on port {i}: {tx:?}");
                return tx.remove(0);
            }
            assert!(
                WallClock::now() < deadline,
                "nothing transmitted on port {i}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(Command::Snapshot(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }
}

fn start() -> Running {
    let spec = SwitchSpec {
        name: "mem".into(),
        mac_table_size: 16,
        mac_aging_secs: 300,
        ports: vec![
            PortSpec {
                name: "uplink".into(),
                role: PortRole::Uplink,
                vlan: VlanMode::Trunk {
                    allowed: VlanSet::from_vids([vid(10)]),
                    native: Some(vid(1)),
                },
                security: SecurityPolicy::default(),
                initial_mac: None,
                features: Default::default(),
            },
            PortSpec {
                name: "g1".into(),
                role: PortRole::Guest,
                vlan: VlanMode::Access(vid(10)),
                security: SecurityPolicy::default(),
                initial_mac: Some(MacAddr(G1)),
                features: Default::default(),
            },
            PortSpec {
                name: "g2".into(),
                role: PortRole::Guest,
                vlan: VlanMode::Access(vid(10)),
                security: SecurityPolicy::default(),
                initial_mac: Some(MacAddr(G2)),
                features: Default::default(),
            },
        ],
        mac_acls: Vec::new(),
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: portcullis_dataplane::DEFAULT_HOST_TABLE_SIZE,
        static_bindings: vec![],
        arp_acls: vec![],
    };
    let mut ports = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let (rx, tx, h) = memory_port();
        ports.push(PortIo {
            rx: Box::new(rx),
            tx: Box::new(tx),
        });
        handles.push(h);
    }
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let dp = DataPlane {
        switch: Switch::new(&spec, Instant(0)).unwrap(),
        ports,
        interfaces: vec!["mem0".into(), "mem1".into(), "mem2".into()],
        groups: vec![String::new(), "web".into(), "web".into()],
        commands: cmd_rx,
        events: ev_tx,
        stop: stop.clone(),
        epoch: WallClock::now(),
        links: Box::new(AlwaysUp),
        link_monitor: None,
        event_buf: Vec::new(),
        circuit_ids: vec!["mem/uplink".into(), "mem/g1".into(), "mem/g2".into()],
        scratch: Default::default(),
        held: portcullis_daemon::held::Held::new(
            None,
            vec!["uplink".into(), "g1".into(), "g2".into()],
        ),
    };
    let thread = std::thread::spawn(move || dp.run());
    Running {
        handles,
        commands: cmd_tx,
        stop,
        thread: Some(thread),
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], tag: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(t) = tag {
        f.extend_from_slice(&t);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn frames_leave_with_the_right_encapsulation() {
    let sw = start();
    let payload = [0xabu8; 46];

    // A broadcast from g1: g2 gets it untagged, the uplink tagged 10 (PCP 0).
    let bcast = eth([0xff; 6], G1, None, &payload);
    sw.handles[1].inject(&bcast, None);
    assert_eq!(sw.next_tx(2), bcast);
    assert_eq!(
        sw.next_tx(0),
        eth([0xff; 6], G1, Some([0x81, 0x00, 0x00, 0x0a]), &payload)
    );

    // A priority-tagged frame (VID 0, PCP 3) from g1 to an unknown MAC: to the uplink,
    // tagged 10 with PCP 3 kept.
    sw.handles[1].inject(
        &eth(ROUTER, G1, Some([0x81, 0x00, 0x60, 0x00]), &payload),
        None,
    );
    assert_eq!(
        sw.next_tx(0),
        eth(ROUTER, G1, Some([0x81, 0x00, 0x60, 0x0a]), &payload)
    );

    // From the uplink, tag in metadata (as AF_PACKET on veth hands it over): to g2 untagged.
    let from_router = eth(G2, ROUTER, None, &payload);
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
        &eth(G1, ROUTER, Some([0x81, 0x00, 0x00, 0x0a]), &payload),
        None,
    );
    assert_eq!(sw.next_tx(1), eth(G1, ROUTER, None, &payload));

    // A forged frame from g2 goes nowhere.
    sw.handles[2].inject(&eth(G1, [0x52, 0x54, 0, 0, 0, 66], None, &payload), None);

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
    for i in 0..3 {
        assert!(
            sw.handles[i].take_transmitted().is_empty(),
            "no stray copies on port {i}"
        );
    }
}
