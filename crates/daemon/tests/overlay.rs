//! The overlay's control commands on a real data-plane thread (in-memory ports):
//! the control plane's peers installed by `SetOverlayPeers` (configured peers
//! kept, this host's own endpoint refused, a MAC another endpoint has refused),
//! and the overlay view `GET /v1/overlay` serves, built by `Overlay`. No root
//! needed; no frames are sent (the overlay port's I/O is the runtime's).

mod common;

use common::{start_data_plane, three_port_switch, vid};
use portcullis_daemon::runtime::Command;
use portcullis_dataplane::overlay::{OverlaySpec, PeersInstalled};
use portcullis_dataplane::{
    MacAddr, OverlayPeer, PortRole, PortSpec, SecurityPolicy, SwitchSpec, VlanMode, VlanSet, Vni,
};
use std::net::IpAddr;

const LOCAL: &str = "198.18.100.1";
const STATIC_PEER: &str = "198.18.100.2";
const CLUSTER_PEER: &str = "198.18.100.3";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 1, last])
}

/// The three-port switch with an overlay port carrying VLAN 10 as VNI 5010, and
/// one configured peer with one MAC.
fn overlay_switch() -> SwitchSpec {
    let mut spec = three_port_switch();
    spec.ports.push(PortSpec {
        name: portcullis_dataplane::overlay::PORT_NAME.into(),
        role: PortRole::Overlay,
        vlan: VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10)]),
            native: None,
        },
        security: SecurityPolicy::default(),
        initial_mac: None,
        features: Default::default(),
    });
    spec.overlay = Some(OverlaySpec {
        vnis: vec![(vid(10), Vni::new(5010).unwrap())],
        udp_port: 4789,
        arp_proxy: false,
        local_ip: ip(LOCAL),
        interface: Some("eth9".into()),
        fragment: false,
        peers: vec![OverlayPeer {
            address: ip(STATIC_PEER),
            macs: vec![(vid(10), mac(2))],
            addresses: Vec::new(),
        }],
        max_remote_macs: 100,
    });
    spec
}

fn set_peers(sw: &common::Running, peers: Vec<OverlayPeer>) -> Option<PeersInstalled> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    sw.commands
        .send(Command::SetOverlayPeers { peers, reply: tx })
        .unwrap();
    rx.blocking_recv().unwrap()
}

fn view(sw: &common::Running, remote_macs: bool) -> Option<portcullis_api::OverlayView> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    sw.commands
        .send(Command::Overlay {
            remote_macs,
            reply: tx,
        })
        .unwrap();
    rx.blocking_recv().unwrap()
}

#[test]
fn the_control_planes_peers_are_installed_beside_the_configured_ones_and_shown() {
    let sw = start_data_plane(&overlay_switch());
    let v = view(&sw, true).expect("an overlay");
    assert_eq!(v.port, "overlay");
    assert_eq!(v.local_ip, LOCAL);
    assert_eq!((v.udp_port, v.interface.as_deref()), (4789, Some("eth9")));
    assert_eq!(
        v.vnis,
        vec![portcullis_api::VniView {
            vlan: 10,
            vni: 5010
        }]
    );
    assert_eq!(v.endpoints.len(), 1);
    assert_eq!(v.endpoints[0].source, "configured");

    // The cluster's peers: a new endpoint with two MACs, one of them the static
    // peer's already (refused: the first keeps it), one in a VLAN the overlay does
    // not carry (skipped), and this host's own endpoint (refused).
    let installed = set_peers(
        &sw,
        vec![
            OverlayPeer {
                address: ip(CLUSTER_PEER),
                macs: vec![(vid(10), mac(3)), (vid(10), mac(2)), (vid(20), mac(4))],
                addresses: Vec::new(),
            },
            OverlayPeer {
                address: ip(LOCAL),
                macs: vec![(vid(10), mac(5))],
                addresses: Vec::new(),
            },
        ],
    )
    .expect("an overlay");
    assert_eq!(
        installed,
        PeersInstalled {
            endpoints: 2,
            macs: 2,
            refused_macs: 1,
            refused_endpoints: 1,
        }
    );

    let v = view(&sw, true).unwrap();
    let endpoints: Vec<(&str, &str, &[u16], usize)> = v
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.source.as_str(), &e.vlans[..], e.macs))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            (STATIC_PEER, "configured", &[10][..], 1),
            (CLUSTER_PEER, "cluster", &[10][..], 1),
        ]
    );
    let remote: Vec<(u16, String, &str)> = v
        .remote_macs
        .iter()
        .map(|r| (r.vlan, r.mac.clone(), r.endpoint.as_str()))
        .collect();
    assert_eq!(
        remote,
        vec![
            (10, mac(2).to_string(), STATIC_PEER),
            (10, mac(3).to_string(), CLUSTER_PEER),
        ]
    );
    assert_eq!(v.remote_mac_count, 2);
    assert_eq!((v.refused_macs, v.refused_endpoints), (1, 1));
    assert_eq!(v.unknown_endpoint, 0);
    assert!(
        v.endpoints
            .iter()
            .all(|e| e.counters == portcullis_api::OverlayEndpointCounters::default())
    );

    // Counts only (the metrics): no MAC list, the same count.
    let counts = view(&sw, false).unwrap();
    assert!(counts.remote_macs.is_empty());
    assert_eq!(counts.remote_mac_count, 2);

    // The cluster's peers replaced by none: the configured one stays.
    assert_eq!(
        set_peers(&sw, Vec::new()),
        Some(PeersInstalled {
            endpoints: 1,
            macs: 1,
            refused_macs: 0,
            refused_endpoints: 0,
        })
    );
    let v = view(&sw, true).unwrap();
    assert_eq!(v.endpoints.len(), 1);
    assert_eq!(v.remote_macs.len(), 1);
}

#[test]
fn a_switch_without_an_overlay_answers_none() {
    let sw = start_data_plane(&three_port_switch());
    assert_eq!(view(&sw, true), None);
    assert_eq!(
        set_peers(
            &sw,
            vec![OverlayPeer {
                address: ip(CLUSTER_PEER),
                macs: vec![(vid(10), mac(3))],
                addresses: Vec::new(),
            }]
        ),
        None
    );
}

/// `GET /v1/overlay` on a daemon whose profile has no overlay: 404 `no_overlay`,
/// for every role that may read.
#[test]
fn the_api_answers_404_no_overlay_without_one() {
    let h = common::ApiHarness::start(
        "overlay-none",
        r#"
[switch]
name = "plain"

[[port_group]]
name = "web"
vlan = 10

[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
"#,
        "plain.toml",
    );
    let (status, v) = h.call(
        common::ROOT,
        axum::http::Method::GET,
        "/v1/overlay",
        None,
        &[],
    );
    assert_eq!(status, axum::http::StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "no_overlay", "{v}");
}
