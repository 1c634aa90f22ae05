//! The overlay's peers as the cluster gives them (docs/cluster.md, "The overlay"):
//! which guest MACs sit behind which other host's tunnel endpoint, derived from the
//! host records (a live host and its `overlay_endpoint`) and the port records (a
//! logical port, its owner, group, MACs and state) the agent watches.
//!
//! Invariant: [`overlay_peers`] is a pure function of the records — a port counts
//! only when it is `active` and its owner is a live host, other than this one,
//! that has an endpoint; its MACs are named with the port's group (the group's
//! VLAN is the daemon's to look up in its running profile). The answer is sorted
//! and without repeats, so equal views give equal answers.

use crate::schema::{LogicalPort, PortState};
use portcullis_dataplane::MacAddr;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The peers of this host's overlay: each other host's endpoint with the (port
/// group, guest MAC) pairs of the ports it serves.
pub type OverlayPeers = Vec<(IpAddr, Vec<(String, MacAddr)>)>;

/// The cluster as one host sees it through its watch: the live hosts (a host's
/// record is under its lease: it goes when the host does) with their endpoints, and
/// every port record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Live hosts by id, with their overlay endpoint if they have one.
    pub hosts: BTreeMap<String, Option<IpAddr>>,
    /// Port records by logical port name.
    pub ports: BTreeMap<String, LogicalPort>,
}

/// The overlay peers `view` gives host `this`: for every live host other than
/// `this` that has an endpoint, every active port it owns, as (group, MAC) per MAC.
/// Two hosts that publish one endpoint are one peer.
pub fn overlay_peers(this: &str, view: &ClusterView) -> OverlayPeers {
    let mut by_endpoint: BTreeMap<IpAddr, Vec<(String, MacAddr)>> = BTreeMap::new();
    for (host, endpoint) in &view.hosts {
        let Some(endpoint) = endpoint else { continue };
        if host == this {
            continue;
        }
        // An endpoint without guests is a peer still (it may get some at once).
        by_endpoint.entry(*endpoint).or_default();
    }
    for port in view.ports.values() {
        if port.state != PortState::Active || port.owner == this {
            continue;
        }
        let Some(Some(endpoint)) = view.hosts.get(&port.owner) else {
            continue;
        };
        if let Some(macs) = by_endpoint.get_mut(endpoint) {
            macs.extend(port.macs.iter().map(|m| (port.group.clone(), *m)));
        }
    }
    by_endpoint
        .into_iter()
        .map(|(endpoint, mut macs)| {
            macs.sort();
            macs.dedup();
            (endpoint, macs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FORMAT;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, last])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn port(owner: &str, group: &str, macs: &[u8], state: PortState) -> LogicalPort {
        LogicalPort {
            format: FORMAT,
            owner: owner.into(),
            macs: macs.iter().map(|m| mac(*m)).collect(),
            group: group.into(),
            metadata: BTreeMap::new(),
            claimed_unix: 1,
            state,
        }
    }

    /// Hosts a (this one), b and c with endpoints, d live without one; e owns a
    /// port but is not live (its lease ended).
    fn view() -> ClusterView {
        let mut v = ClusterView::default();
        v.hosts.insert("a".into(), Some(ip("198.18.100.1")));
        v.hosts.insert("b".into(), Some(ip("198.18.100.2")));
        v.hosts.insert("c".into(), Some(ip("fd00:198:18:100::3")));
        v.hosts.insert("d".into(), None);
        let ports = [
            ("vm-a", port("a", "web", &[1], PortState::Active)),
            ("vm-b1", port("b", "web", &[2, 3], PortState::Active)),
            ("vm-b2", port("b", "db", &[4], PortState::Active)),
            ("vm-b3", port("b", "web", &[5], PortState::Away)),
            ("vm-c", port("c", "web", &[6], PortState::Active)),
            ("vm-d", port("d", "web", &[7], PortState::Active)),
            ("vm-e", port("e", "web", &[8], PortState::Active)),
        ];
        for (name, p) in ports {
            v.ports.insert(name.into(), p);
        }
        v
    }

    #[test]
    fn the_active_ports_of_other_live_hosts_with_an_endpoint_are_the_peers() {
        let g = |group: &str, m: u8| (group.to_string(), mac(m));
        assert_eq!(
            overlay_peers("a", &view()),
            vec![
                (
                    ip("198.18.100.2"),
                    vec![g("db", 4), g("web", 2), g("web", 3)]
                ),
                (ip("fd00:198:18:100::3"), vec![g("web", 6)]),
            ]
        );
        // From b: a's port, c's; never b's own (away or not).
        assert_eq!(
            overlay_peers("b", &view()),
            vec![
                (ip("198.18.100.1"), vec![g("web", 1)]),
                (ip("fd00:198:18:100::3"), vec![g("web", 6)]),
            ]
        );
        // A host without an endpoint sees every endpoint all the same.
        assert_eq!(overlay_peers("d", &view()).len(), 3);
    }

    #[test]
    fn a_port_that_moves_takes_its_macs_to_its_new_owners_endpoint() {
        let mut v = view();
        v.ports
            .insert("vm-c".into(), port("b", "web", &[6], PortState::Active));
        let peers = overlay_peers("a", &v);
        assert_eq!(peers[0].0, ip("198.18.100.2"));
        assert!(peers[0].1.contains(&("web".to_string(), mac(6))));
        assert_eq!(peers[1], (ip("fd00:198:18:100::3"), vec![]));
    }

    #[test]
    fn a_host_that_dies_or_has_no_endpoint_takes_its_macs_away() {
        let mut v = view();
        v.hosts.remove("b");
        v.hosts.insert("c".into(), None);
        assert_eq!(overlay_peers("a", &v), vec![]);
    }

    #[test]
    fn hosts_that_publish_one_endpoint_are_one_peer_and_macs_are_not_repeated() {
        let mut v = ClusterView::default();
        v.hosts.insert("b".into(), Some(ip("198.18.100.2")));
        v.hosts.insert("b2".into(), Some(ip("198.18.100.2")));
        v.ports
            .insert("p1".into(), port("b", "web", &[2, 2], PortState::Active));
        v.ports
            .insert("p2".into(), port("b2", "web", &[2, 9], PortState::Active));
        assert_eq!(
            overlay_peers("a", &v),
            vec![(
                ip("198.18.100.2"),
                vec![("web".to_string(), mac(2)), ("web".to_string(), mac(9))]
            )]
        );
    }
}
