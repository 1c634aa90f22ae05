//! A whole-switch-state dump for tests and diagnostics, as OPTE's `port_state`: one
//! plain, comparable value with everything a scenario asserts — per port its admin,
//! link and oper state, err-disable cause, MACs, port security and teaming pin, its
//! non-zero counters by name; the MAC table; the bindings; the ACL hit counters.
//!
//! Invariant: built only from the [`Switch`]'s public read API, so it shows what an
//! operator can see and nothing else; ports are named, never numbered, so a dump does
//! not depend on port indexes. Every fact is one line of the [`fmt::Display`] form,
//! so two dumps compare line by line ([`changes`]). Allocates: control path only.

use crate::bindings::BindingSource;
use crate::errdisable::ErrDisableCause;
use crate::spec::PortRole;
use crate::switch::Switch;
use crate::types::{MacAddr, PortId, Timestamp};
use crate::verdict::DropReason;
use std::fmt;
use std::net::IpAddr;

/// The whole visible state of a switch at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchState {
    /// In port order.
    pub ports: Vec<PortState>,
    /// Live MAC table entries, sorted by (VLAN, MAC).
    pub macs: Vec<MacRow>,
    /// Bindings, sorted by (VLAN, IP).
    pub bindings: Vec<BindingRow>,
    /// Per MAC ACL: its name and hits per rule (the last one: the implicit deny).
    pub acl_hits: Vec<(String, Vec<u64>)>,
}

/// One port's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortState {
    pub name: String,
    pub role: PortRole,
    pub admin_up: bool,
    pub link_up: bool,
    /// Forwarding frames in and out (admin up, link up, not error-disabled).
    pub oper_up: bool,
    pub err_disabled: Option<ErrDisableCause>,
    pub initial_mac: Option<MacAddr>,
    pub effective_mac: Option<MacAddr>,
    /// Port security: (secure MACs in use, maximum, violations so far).
    pub secure: Option<(u16, u16, u64)>,
    /// A guest's teaming pin: the uplink its traffic leaves by now.
    pub uplink: Option<String>,
    /// The non-zero counters by name (see [`counter_rows`]).
    pub counters: Vec<(String, u64)>,
}

/// A MAC table entry: VLAN, MAC, port name, kind (`MacKind::name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacRow {
    pub vid: u16,
    pub mac: MacAddr,
    pub port: String,
    pub kind: &'static str,
}

/// A binding: VLAN, IP, MAC, port name, source, lease end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingRow {
    pub vid: u16,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub port: String,
    pub source: BindingSource,
    pub lease_end: Option<Timestamp>,
}

/// The state of `switch` as seen at `now` (MAC entries older than their aging time
/// at `now` are left out, as the table's lookups would).
pub fn dump(switch: &Switch, now: Timestamp) -> SwitchState {
    let name = |p: PortId| {
        switch
            .port(p)
            .map_or_else(|| format!("#{}", p.0), |p| p.name.clone())
    };
    let ports = switch
        .ports()
        .iter()
        .map(|p| PortState {
            name: p.name.clone(),
            role: p.role,
            admin_up: p.admin_up,
            link_up: p.link_up,
            oper_up: p.is_up(),
            err_disabled: p.err_disabled.map(|e| e.cause),
            initial_mac: p.initial_mac,
            effective_mac: p.effective_mac,
            secure: p.secure.map(|s| (s.count, s.max_macs, s.violations)),
            uplink: switch.uplink_of(p.id).map(name),
            counters: switch.counters(p.id).map(counter_rows).unwrap_or_default(),
        })
        .collect();
    let macs = switch
        .mac_table()
        .entries(now)
        .into_iter()
        .map(|(vid, mac, e)| MacRow {
            vid: vid.get(),
            mac,
            port: name(e.port),
            kind: e.kind.name(),
        })
        .collect();
    let mut bindings: Vec<BindingRow> = switch
        .bindings()
        .into_iter()
        .map(|b| BindingRow {
            vid: b.vid.get(),
            ip: b.ip,
            mac: b.binding.mac,
            port: name(b.binding.port),
            source: b.binding.source,
            lease_end: b.binding.lease_end,
        })
        .collect();
    bindings.sort_by_key(|b| (b.vid, b.ip));
    let acl_hits = switch
        .mac_acls()
        .iter()
        .map(|a| (a.spec.name.clone(), a.hits.clone()))
        .collect();
    SwitchState {
        ports,
        macs,
        bindings,
        acl_hits,
    }
}

/// The non-zero counters of a port by name: `rx_frames`, `rx_bytes`, `tx_frames`,
/// `tx_bytes`, then `rx_drop.<reason>`, `tx_drop.<reason>`, `observed.<reason>`.
pub fn counter_rows(c: &crate::counters::PortCounters) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = [
        ("rx_frames", c.rx_frames),
        ("rx_bytes", c.rx_bytes),
        ("tx_frames", c.tx_frames),
        ("tx_bytes", c.tx_bytes),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    for (kind, per) in [
        ("rx_drop", &c.rx_drops),
        ("tx_drop", &c.tx_drops),
        ("observed", &c.observed),
    ] {
        for r in DropReason::ALL {
            rows.push((format!("{kind}.{}", r.name()), per[*r as usize]));
        }
    }
    rows.retain(|(_, v)| *v != 0);
    rows
}

/// An instant in the coarsest exact unit: `12s`, `1004ms`, `7ns`.
fn instant(t: Timestamp) -> String {
    match t.0 {
        ns if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
        ns if ns % 1_000_000 == 0 => format!("{}ms", ns / 1_000_000),
        ns => format!("{ns}ns"),
    }
}

fn on_off(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

impl SwitchState {
    /// The port named `name`. Panics if there is none (a test's mistake).
    pub fn port(&self, name: &str) -> &PortState {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name} in the dump"))
    }

    /// One line per fact, in a stable order: what [`fmt::Display`] prints.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.ports {
            let n = &p.name;
            let role = match p.role {
                PortRole::Guest => "guest",
                PortRole::Uplink => "uplink",
                PortRole::Overlay => "overlay",
            };
            out.push(format!(
                "port {n}: {role}, admin {}, link {}, oper {}",
                on_off(p.admin_up),
                on_off(p.link_up),
                on_off(p.oper_up)
            ));
            if let Some(cause) = p.err_disabled {
                out.push(format!("port {n}: err-disabled by {cause:?}"));
            }
            if p.initial_mac.is_some() || p.effective_mac.is_some() {
                let show =
                    |m: Option<MacAddr>| m.map_or_else(|| "-".to_string(), |m| m.to_string());
                out.push(format!(
                    "port {n}: initial mac {}, effective mac {}",
                    show(p.initial_mac),
                    show(p.effective_mac)
                ));
            }
            if let Some((count, max, violations)) = p.secure {
                out.push(format!(
                    "port {n}: secure macs {count}/{max}, violations {violations}"
                ));
            }
            if let Some(u) = &p.uplink {
                out.push(format!("port {n}: pinned to {u}"));
            }
            for (c, v) in &p.counters {
                out.push(format!("port {n}: {c} {v}"));
            }
        }
        for m in &self.macs {
            out.push(format!(
                "mac vlan {} {} on {} ({})",
                m.vid, m.mac, m.port, m.kind
            ));
        }
        for b in &self.bindings {
            let lease = b.lease_end.map_or_else(
                || "no lease end".to_string(),
                |t| format!("lease end {}", instant(t)),
            );
            out.push(format!(
                "binding vlan {} {} {} on {} ({}, {lease})",
                b.vid,
                b.ip,
                b.mac,
                b.port,
                b.source.name()
            ));
        }
        for (name, hits) in &self.acl_hits {
            out.push(format!("acl {name}: hits {hits:?}"));
        }
        out
    }
}

impl fmt::Display for SwitchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// What changed from `before` to `after`, line by line, in dump order: `~ fact old
/// → new` for a fact whose value (its last word) changed, such as a counter; `- fact`
/// for each fact gone; then `+ fact` for each fact new. Empty: nothing changed.
pub fn changes(before: &SwitchState, after: &SwitchState) -> Vec<String> {
    let (old, new) = (before.lines(), after.lines());
    let key = |l: &str| {
        l.rsplit_once(' ')
            .map_or(l.to_string(), |(k, _)| k.to_string())
    };
    let gone: Vec<&String> = old.iter().filter(|l| !new.contains(l)).collect();
    let came: Vec<&String> = new.iter().filter(|l| !old.contains(l)).collect();
    // The one new line with the same key as a gone line: a changed value.
    let successor = |g: &str| {
        let mut same = came.iter().filter(|c| key(c) == key(g));
        match (same.next(), same.next()) {
            (Some(c), None) => Some(*c),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut replaced = Vec::new();
    for g in &gone {
        match successor(g) {
            Some(c) => {
                let value = c.rsplit_once(' ').map_or("", |(_, v)| v);
                out.push(format!("~ {g} → {value}"));
                replaced.push(c);
            }
            None => out.push(format!("- {g}")),
        }
    }
    out.extend(
        came.iter()
            .filter(|c| !replaced.contains(c))
            .map(|c| format!("+ {c}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::NewBinding;
    use crate::frame::IngressFrame;
    use crate::spec::{PortSpec, SecurityPolicy, SwitchSpec, VlanMode};
    use crate::types::Vid;

    fn mac(i: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, i])
    }

    fn spec() -> SwitchSpec {
        let vid = Vid::new(10).unwrap();
        let guest = |name: &str, i: u8| PortSpec {
            name: name.into(),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vid),
            security: SecurityPolicy::default(),
            initial_mac: Some(mac(i)),
            features: Default::default(),
        };
        SwitchSpec {
            name: "sw".into(),
            mac_table_size: 16,
            mac_aging_secs: 300,
            ports: vec![guest("a", 1), guest("b", 2)],
            mac_acls: Vec::new(),
            max_bindings: crate::spec::DEFAULT_MAX_BINDINGS,
            host_table_size: crate::spec::DEFAULT_HOST_TABLE_SIZE,
            overlay: None,
            static_bindings: vec![],
            arp_acls: vec![],
        }
    }

    #[test]
    fn a_new_switch_dumps_its_ports_and_guest_macs_and_nothing_else() {
        let sw = Switch::new(&spec(), Timestamp(0)).unwrap();
        let text = dump(&sw, Timestamp(0)).to_string();
        assert_eq!(
            text,
            "port a: guest, admin up, link up, oper up\n\
             port a: initial mac 52:54:00:00:00:01, effective mac 52:54:00:00:00:01\n\
             port b: guest, admin up, link up, oper up\n\
             port b: initial mac 52:54:00:00:00:02, effective mac 52:54:00:00:00:02\n\
             mac vlan 10 52:54:00:00:00:01 on a (guest)\n\
             mac vlan 10 52:54:00:00:00:02 on b (guest)\n"
        );
    }

    #[test]
    fn changes_lists_exactly_what_a_frame_a_binding_and_admin_down_changed() {
        let mut sw = Switch::new(&spec(), Timestamp(0)).unwrap();
        let before = dump(&sw, Timestamp(0));
        assert_eq!(changes(&before, &before), Vec::<String>::new());

        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&mac(2).0);
        frame[6..12].copy_from_slice(&mac(1).0);
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let rx = IngressFrame {
            data: &frame,
            tag: None,
        };
        sw.process(Timestamp(1), PortId(0), &rx);
        sw.install_binding(
            NewBinding {
                vid: Vid::new(10).unwrap(),
                ip: "198.18.10.1".parse().unwrap(),
                mac: mac(1),
                port: PortId(0),
                lease_secs: None,
                source: BindingSource::Api,
                duid: None,
            },
            Timestamp(1),
        )
        .unwrap();
        sw.set_admin_up(PortId(1), false).unwrap();
        let after = dump(&sw, Timestamp(1));
        assert_eq!(
            changes(&before, &after),
            [
                "- port b: guest, admin up, link up, oper up",
                "+ port a: rx_frames 1",
                "+ port a: rx_bytes 60",
                "+ port b: guest, admin down, link up, oper down",
                "+ port b: tx_frames 1",
                "+ port b: tx_bytes 60",
                "+ binding vlan 10 198.18.10.1 52:54:00:00:00:01 on a (api, no lease end)",
            ]
        );
        assert!(!after.port("b").oper_up);

        // A value that changes (a counter) is one `~` line.
        sw.process(Timestamp(2), PortId(0), &rx);
        assert_eq!(
            changes(&after, &dump(&sw, Timestamp(2))),
            [
                "~ port a: rx_frames 1 → 2",
                "~ port a: rx_bytes 60 → 120",
                "+ port b: tx_drop.port_down 1",
            ]
        );
    }
}
