//! `portcullis show …`: fetch a view from the daemon's API and print it as a table
//! (or the API's JSON with --json).

use clap::Subcommand;
use portcullis_api::{CountersResponse, EventRecord};
use portcullis_api::{MacTableView, PortView};

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum What {
    /// Ports: role, VLAN, state, MACs, uplink in use, frame counts.
    Ports,
    /// The MAC table.
    Mac,
    /// Counters per port and drops per reason.
    Counters,
    /// Recent switch events (with --follow: then each new one, until Ctrl-C).
    Events {
        /// Keep printing new events as they come (with --json: one JSON object per
        /// line).
        #[arg(long)]
        follow: bool,
    },
    /// Port security per port: limits, secure MACs, violations, err-disable.
    PortSecurity,
    /// MAC ACLs: rules with hit counts, and where they are bound.
    MacAcl,
    /// DHCP snooping / static / API bindings.
    Bindings,
    /// Uplinks: state, VLANs, and the guests whose traffic each carries now.
    Uplinks,
    /// The VXLAN overlay: VNIs, remote tunnel endpoints with their counters, and
    /// the remote MACs behind each.
    Overlay,
}

/// Prints rows as aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        s.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn drops_text(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn ports_table(ports: &[PortView]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            let mac = match (&p.initial_mac, &p.effective_mac) {
                (Some(i), Some(e)) if i != e => format!("{e} (initial {i})"),
                (_, Some(e)) => e.clone(),
                _ => "-".into(),
            };
            let state = if p.mac_change_blocked {
                format!("{} blocked:mac-change", p.state)
            } else {
                p.state.clone()
            };
            vec![
                p.name.clone(),
                p.role.clone(),
                p.interface.clone(),
                p.port_group.clone().unwrap_or_else(|| "-".into()),
                p.vlan.to_string(),
                state,
                mac,
                p.uplink.clone().unwrap_or_else(|| "-".into()),
                p.owner_summary().unwrap_or_else(|| "-".into()),
                p.counters.rx_frames.to_string(),
                p.counters.tx_frames.to_string(),
                (p.counters.rx_dropped + p.counters.tx_dropped).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PORT",
            "ROLE",
            "INTERFACE",
            "GROUP",
            "VLAN",
            "STATE",
            "MAC",
            "UPLINK",
            "USED-BY",
            "RX",
            "TX",
            "DROPPED",
        ],
        &rows,
    )
}

pub fn counters_table(c: &CountersResponse) -> String {
    let rows: Vec<Vec<String>> = c
        .ports
        .iter()
        .map(|p| {
            let k = &p.counters;
            vec![
                p.name.clone(),
                k.rx_frames.to_string(),
                k.rx_bytes.to_string(),
                k.tx_frames.to_string(),
                k.tx_bytes.to_string(),
                k.rx_dropped.to_string(),
                k.tx_dropped.to_string(),
                drops_text(&k.rx_drops),
                drops_text(&k.tx_drops),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "PORT",
            "RX-FRAMES",
            "RX-BYTES",
            "TX-FRAMES",
            "TX-BYTES",
            "RX-DROP",
            "TX-DROP",
            "RX-DROP-REASONS",
            "TX-DROP-REASONS",
        ],
        &rows,
    );
    out.push_str(&format!("\ndrops by reason: {}\n", drops_text(&c.drops)));
    out
}

pub fn mac_table(m: &MacTableView) -> String {
    let rows: Vec<Vec<String>> = m
        .entries
        .iter()
        .map(|e| {
            vec![
                e.vlan.to_string(),
                e.mac.clone(),
                e.port.clone(),
                e.kind.clone(),
                e.age_secs.to_string(),
            ]
        })
        .collect();
    let mut out = table(&["VLAN", "MAC", "PORT", "KIND", "AGE(s)"], &rows);
    out.push_str(&format!(
        "\n{} of {} entries; learning refused (table full): {}; aged out: {}\n",
        m.entries.len(),
        m.capacity,
        m.learn_refused,
        m.aged_out
    ));
    out
}

pub fn port_security_table(ps: &[portcullis_api::PortSecurityView]) -> String {
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            let macs: Vec<String> = p
                .secure_macs
                .iter()
                .map(|m| format!("{}({})", m.mac, m.kind))
                .collect();
            vec![
                p.port.clone(),
                format!("{}/{}", p.count, p.max_macs),
                p.violation.clone(),
                if p.sticky {
                    "sticky".into()
                } else {
                    format!("{} {}s", p.aging, p.aging_secs)
                },
                p.violations.to_string(),
                p.last_violation.clone().unwrap_or_else(|| "-".into()),
                p.err_disabled
                    .clone()
                    .map_or("no".into(), |c| format!("yes ({c})")),
                if macs.is_empty() {
                    "-".into()
                } else {
                    macs.join(" ")
                },
            ]
        })
        .collect();
    table(
        &[
            "PORT",
            "MACS",
            "VIOLATION",
            "LEARNING",
            "VIOLATIONS",
            "LAST-VIOLATION",
            "ERR-DISABLED",
            "SECURE-MACS",
        ],
        &rows,
    )
}

pub fn mac_acl_table(acls: &[portcullis_api::MacAclView]) -> String {
    let mut out = String::new();
    for a in acls {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(",")
            }
        };
        out.push_str(&format!(
            "mac acl {} (in: {}; out: {})\n",
            a.name,
            list(&a.bound_in),
            list(&a.bound_out)
        ));
        let mut rows: Vec<Vec<String>> = a
            .rules
            .iter()
            .map(|r| vec![r.seq.to_string(), r.rule.clone(), r.hits.to_string()])
            .collect();
        rows.push(vec![
            "-".into(),
            "deny any (implicit)".into(),
            a.implicit_deny_hits.to_string(),
        ]);
        for line in table(&["SEQ", "RULE", "HITS"], &rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if acls.is_empty() {
        out.push_str("no MAC ACLs configured\n");
    }
    out
}

pub fn bindings_table(b: &portcullis_api::BindingsView) -> String {
    // The DUID column only when some binding (a DHCPv6 one) has a DUID.
    let duids = b.bindings.iter().any(|e| e.duid.is_some());
    let rows: Vec<Vec<String>> = b
        .bindings
        .iter()
        .map(|e| {
            let mut row = vec![
                e.vlan.to_string(),
                e.ip.clone(),
                e.mac.clone(),
                e.port.clone(),
                e.source.clone(),
                e.lease_left_secs
                    .map_or("infinite".into(), |s| format!("{s}s")),
            ];
            if duids {
                row.push(e.duid.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let mut headers = vec!["VLAN", "IP", "MAC", "PORT", "SOURCE", "LEASE-LEFT"];
    if duids {
        headers.push("DUID");
    }
    let mut out = table(&headers, &rows);
    out.push_str(&format!(
        "\n{} of {} bindings; ACKs held {}, released {}, dropped (store failed or full) {}, waiting {}\n",
        b.bindings.len(),
        b.capacity,
        b.held.held,
        b.held.released,
        b.held.failed + b.held.queue_full,
        b.held.waiting
    ));
    out
}

pub fn uplinks_table(u: &[portcullis_api::UplinkView]) -> String {
    let rows: Vec<Vec<String>> = u
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.interface.clone(),
                x.state.clone(),
                x.vlan.to_string(),
                x.rx_frames.to_string(),
                x.tx_frames.to_string(),
                if x.guests.is_empty() {
                    "-".into()
                } else {
                    x.guests.join(",")
                },
            ]
        })
        .collect();
    table(
        &[
            "UPLINK",
            "INTERFACE",
            "STATE",
            "VLAN",
            "RX",
            "TX",
            "GUESTS (TEAM-PNIC)",
        ],
        &rows,
    )
}

/// A list of VLANs as ranges (`10,20-29`), `-` when empty.
fn vlan_list(vids: &[u16]) -> String {
    match portcullis_api::VlanView::trunk(vids.iter().copied(), None) {
        portcullis_api::VlanView::Trunk { allowed, .. } if !allowed.is_empty() => allowed
            .iter()
            .map(|r| {
                if r.first == r.last {
                    r.first.to_string()
                } else {
                    format!("{}-{}", r.first, r.last)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

/// `show overlay`: the local endpoint and VNIs, a table of remote endpoints with
/// their counters, a table of remote MACs, and what was refused.
pub fn overlay_table(o: &portcullis_api::OverlayView) -> String {
    let mut out = format!(
        "local endpoint {} udp {} interface {}, port {}, arp proxy {}\n",
        o.local_ip,
        o.udp_port,
        o.interface.as_deref().unwrap_or("any"),
        o.port,
        if o.arp_proxy { "on" } else { "off" }
    );
    let vnis: Vec<String> = o
        .vnis
        .iter()
        .map(|v| format!("{}={}", v.vlan, v.vni))
        .collect();
    out.push_str(&format!(
        "VNIs (VLAN=VNI): {}\n\n",
        if vnis.is_empty() {
            "-".to_string()
        } else {
            vnis.join(" ")
        }
    ));
    let rows: Vec<Vec<String>> = o
        .endpoints
        .iter()
        .map(|e| {
            let c = &e.counters;
            vec![
                e.address.clone(),
                e.source.clone(),
                vlan_list(&e.vlans),
                e.macs.to_string(),
                c.rx_frames.to_string(),
                c.rx_bytes.to_string(),
                c.tx_frames.to_string(),
                c.tx_bytes.to_string(),
                c.forged_source.to_string(),
                c.bad_header.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no remote endpoints\n");
    } else {
        out.push_str(&table(
            &[
                "ENDPOINT",
                "SOURCE",
                "VLANS",
                "MACS",
                "RX-FRAMES",
                "RX-BYTES",
                "TX-FRAMES",
                "TX-BYTES",
                "FORGED-SOURCE",
                "BAD-HEADER",
            ],
            &rows,
        ));
    }
    if !o.remote_macs.is_empty() {
        let rows: Vec<Vec<String>> = o
            .remote_macs
            .iter()
            .map(|m| vec![m.vlan.to_string(), m.mac.clone(), m.endpoint.clone()])
            .collect();
        out.push('\n');
        out.push_str(&table(&["VLAN", "MAC", "ENDPOINT"], &rows));
    }
    out.push_str(&format!(
        "\n{} remote MACs on {} endpoints; refused: {} MACs, {} endpoints; datagrams from unknown endpoints: {}\n",
        o.remote_mac_count,
        o.endpoints.len(),
        o.refused_macs,
        o.refused_endpoints,
        o.unknown_endpoint
    ));
    out
}

pub fn events_table(ev: &[EventRecord]) -> String {
    let rows: Vec<Vec<String>> = ev
        .iter()
        .map(|e| {
            let mut d = e.detail.clone();
            if let Some(o) = d.as_object_mut() {
                o.remove("port");
            }
            vec![
                e.time.clone(),
                e.port.clone(),
                e.event.clone(),
                d.to_string(),
            ]
        })
        .collect();
    table(&["TIME", "PORT", "EVENT", "DETAIL"], &rows)
}

/// How often `show events --follow` asks for new events.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// One event on one line: time, port, event, detail (without the port again).
pub fn event_line(e: &EventRecord) -> String {
    let mut d = e.detail.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("port");
    }
    let port = if e.port.is_empty() { "-" } else { &e.port };
    format!("{:<24}  {:<10}  {:<24}  {d}", e.time, port, e.event)
}

/// The events after `after` (all of them without): the records, and the raw JSON
/// objects `--json` prints.
fn events_after(
    api: &super::ApiOpts,
    after: Option<u64>,
) -> anyhow::Result<Vec<(EventRecord, serde_json::Value)>> {
    let path = match after {
        Some(n) => format!("/v1/events?after_seq={n}"),
        None => "/v1/events".to_string(),
    };
    let v = api.call(portcullis_api::Method::GET, &path, None)?;
    let raw: Vec<serde_json::Value> = serde_json::from_value(v)?;
    raw.into_iter()
        .map(|r| Ok((serde_json::from_value(r.clone())?, r)))
        .collect()
}

/// `show events --follow`: the history, then every new event as the daemon records
/// it, polling `?after_seq=` (no event twice, none skipped while the daemon keeps
/// running), until the process is interrupted. A failed poll is reported on stderr
/// and retried; the first must succeed.
pub fn follow_events(json: bool, api: &super::ApiOpts) -> anyhow::Result<()> {
    let mut last = None;
    let mut first = true;
    if !json {
        println!(
            "{:<13}  {:<10}  {:<24}  DETAIL",
            "TIME(ms)", "PORT", "EVENT"
        );
    }
    loop {
        match events_after(api, last) {
            Ok(events) => {
                for (rec, raw) in &events {
                    if json {
                        println!("{raw}");
                    } else {
                        println!("{}", event_line(rec));
                    }
                }
                if let Some((rec, _)) = events.last() {
                    last = Some(rec.seq);
                }
            }
            Err(e) if first => return Err(e),
            Err(e) => eprintln!("portcullis: {e:#} (retrying)"),
        }
        first = false;
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

pub fn run(what: What, json: bool, api: &super::ApiOpts) -> anyhow::Result<()> {
    if let What::Events { follow: true } = what {
        return follow_events(json, api);
    }
    let path = match what {
        What::Ports => "/v1/ports",
        What::Mac => "/v1/mac",
        What::Counters => "/v1/counters",
        What::Events { .. } => "/v1/events",
        What::PortSecurity => "/v1/port-security",
        What::MacAcl => "/v1/mac-acls",
        What::Bindings => "/v1/bindings",
        What::Uplinks => "/v1/uplinks",
        What::Overlay => "/v1/overlay",
    };
    let v = api.call(portcullis_api::Method::GET, path, None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let text = match what {
        What::Ports => ports_table(&serde_json::from_value::<Vec<_>>(v)?),
        What::Mac => mac_table(&serde_json::from_value(v)?),
        What::Counters => counters_table(&serde_json::from_value(v)?),
        What::Events { .. } => events_table(&serde_json::from_value::<Vec<_>>(v)?),
        What::PortSecurity => port_security_table(&serde_json::from_value::<Vec<_>>(v)?),
        What::MacAcl => mac_acl_table(&serde_json::from_value::<Vec<_>>(v)?),
        What::Bindings => bindings_table(&serde_json::from_value(v)?),
        What::Uplinks => uplinks_table(&serde_json::from_value::<Vec<_>>(v)?),
        What::Overlay => overlay_table(&serde_json::from_value(v)?),
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_line_names_time_port_event_and_the_rest_of_the_detail() {
        let e = EventRecord {
            seq: 7,
            time: "2026-11-26T22:14:13.512Z".into(),
            port: "vm2".into(),
            event: "ip_conflict".into(),
            detail: serde_json::json!({"port": "vm2", "ip": "198.18.10.5", "owner": "vm1"}),
        };
        let line = event_line(&e);
        assert!(
            line.starts_with("2026-11-26T22:14:13.512Z  vm2         ip_conflict "),
            "{line}"
        );
        assert!(
            line.ends_with(r#"{"ip":"198.18.10.5","owner":"vm1"}"#),
            "{line}"
        );
        let no_port = EventRecord {
            port: String::new(),
            ..e
        };
        assert!(
            event_line(&no_port).contains("  -  "),
            "{}",
            event_line(&no_port)
        );
    }

    #[test]
    fn the_duid_column_shows_only_when_a_binding_has_one() {
        let row = |ip: &str, source: &str, duid: Option<&str>| portcullis_api::BindingView {
            vlan: 10,
            ip: ip.into(),
            mac: "52:54:00:00:00:02".into(),
            port: "vm2".into(),
            source: source.into(),
            lease_left_secs: Some(60),
            duid: duid.map(str::to_owned),
        };
        let mut b = portcullis_api::BindingsView {
            capacity: 100,
            bindings: vec![row("198.18.10.2", "dhcp", None)],
            held: portcullis_api::HeldStats::default(),
        };
        assert!(!bindings_table(&b).contains("DUID"));
        let duid = "00:03:00:01:52:54:00:00:00:02";
        b.bindings
            .push(row("fd00:198:18:10::100", "dhcpv6", Some(duid)));
        let t = bindings_table(&b);
        let header = t.lines().next().unwrap();
        assert!(header.ends_with("DUID"), "{t}");
        assert!(
            t.lines().any(|l| l.contains("dhcpv6") && l.ends_with(duid)),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.contains("198.18.10.2") && l.trim_end().ends_with('-')),
            "{t}"
        );
    }

    #[test]
    fn the_overlay_shows_endpoints_with_counters_and_remote_macs() {
        use portcullis_api::{
            OverlayEndpointCounters, OverlayEndpointView, OverlayView, RemoteMacView, VniView,
        };
        let mut o = OverlayView {
            port: "overlay".into(),
            local_ip: "198.18.100.1".into(),
            udp_port: 4789,
            interface: None,
            arp_proxy: true,
            vnis: vec![
                VniView {
                    vlan: 10,
                    vni: 5010,
                },
                VniView {
                    vlan: 20,
                    vni: 5020,
                },
            ],
            endpoints: vec![OverlayEndpointView {
                address: "198.18.100.2".into(),
                source: "cluster".into(),
                vlans: vec![10, 11, 12, 20],
                macs: 4,
                counters: OverlayEndpointCounters {
                    rx_frames: 7,
                    rx_bytes: 700,
                    tx_frames: 9,
                    tx_bytes: 900,
                    forged_source: 2,
                    bad_header: 1,
                },
            }],
            remote_mac_count: 1,
            remote_macs: vec![RemoteMacView {
                vlan: 10,
                mac: "52:54:00:00:01:03".into(),
                endpoint: "198.18.100.2".into(),
            }],
            refused_macs: 3,
            refused_endpoints: 0,
            unknown_endpoint: 5,
        };
        let t = overlay_table(&o);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "local endpoint 198.18.100.1 udp 4789 interface any, port overlay, arp proxy on"
        );
        assert_eq!(lines[1], "VNIs (VLAN=VNI): 10=5010 20=5020");
        assert!(lines[3].starts_with("ENDPOINT"), "{t}");
        let row: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "198.18.100.2",
                "cluster",
                "10-12,20",
                "4",
                "7",
                "700",
                "9",
                "900",
                "2",
                "1"
            ]
        );
        assert!(
            t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["10", "52:54:00:00:01:03", "198.18.100.2"]),
            "{t}"
        );
        assert!(
            t.ends_with(
                "1 remote MACs on 1 endpoints; refused: 3 MACs, 0 endpoints; datagrams from unknown endpoints: 5\n"
            ),
            "{t}"
        );
        o.endpoints.clear();
        o.remote_macs.clear();
        let t = overlay_table(&o);
        assert!(t.contains("no remote endpoints\n"), "{t}");
        assert!(!t.contains("ENDPOINT"), "{t}");
    }
}
