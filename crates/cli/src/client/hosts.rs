//! `portcullis hosts [--vlan N] [--json]`: the hosts behind each VLAN and subnet, as
//! the switch knows them from its own tables (`GET /v1/hosts`): bindings, addresses
//! seen as ARP senders on guest ports, and guest MACs without a known address.
//!
//! Invariant: everything printed comes from one answer of the API; `--json` prints
//! that answer unchanged.

use super::ApiOpts;
use super::show::table;
use clap::Args;
use portcullis_api::{HostView, HostsView};

/// What `portcullis hosts` takes besides how to reach the daemon.
#[derive(Args, Debug, Clone)]
pub struct HostsArgs {
    /// Only this VLAN.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &HostsArgs, api: &ApiOpts) -> anyhow::Result<()> {
    let path = match args.vlan {
        Some(v) => format!("/v1/hosts?vlan={v}"),
        None => "/v1/hosts".to_string(),
    };
    let v = api.call(portcullis_api::Method::GET, &path, None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&serde_json::from_value(v)?));
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "host" } else { "hosts" }
}

fn rows(hosts: &[HostView]) -> Vec<Vec<String>> {
    hosts
        .iter()
        .map(|h| {
            vec![
                h.ip.clone().unwrap_or_else(|| "-".into()),
                h.mac.clone(),
                h.port.clone(),
                h.source.clone(),
                h.age_secs.map_or("-".into(), |s| format!("{s}s")),
            ]
        })
        .collect()
}

/// The view as text: per VLAN, per subnet, one table of hosts.
pub fn render(view: &HostsView) -> String {
    const HEADER: [&str; 5] = ["IP", "MAC", "PORT", "SOURCE", "AGE"];
    let mut out = String::new();
    for v in &view.vlans {
        out.push_str(&format!(
            "VLAN {}: {} {}\n",
            v.vlan,
            v.count,
            plural(v.count)
        ));
        let mut groups: Vec<(String, &[HostView])> = v
            .subnets
            .iter()
            .map(|s| {
                (
                    format!("{}: {} {}", s.subnet, s.count, plural(s.count)),
                    &s.hosts[..],
                )
            })
            .collect();
        if !v.mac_only.is_empty() {
            let n = v.mac_only.len();
            groups.push((
                format!("no address known: {n} {}", plural(n)),
                &v.mac_only[..],
            ));
        }
        for (title, hosts) in groups {
            out.push_str(&format!("  {title}\n"));
            for line in table(&HEADER, &rows(hosts)).lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    if view.vlans.is_empty() {
        out.push_str("no hosts known\n");
    }
    let t = &view.table;
    out.push_str(&format!(
        "\nIP-seen table: {} of {} entries; evicted {}; aged out {}; duplicate IPs reported {}, held down {}\n",
        t.entries, t.capacity, t.evicted, t.aged_out, t.conflicts_reported, t.conflicts_suppressed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_api::{SubnetHostsView, VlanHostsView};

    fn host(ip: Option<&str>, mac: &str, port: &str, source: &str, age: Option<u64>) -> HostView {
        HostView {
            ip: ip.map(str::to_string),
            mac: mac.into(),
            port: port.into(),
            source: source.into(),
            age_secs: age,
        }
    }

    #[test]
    fn renders_vlans_subnets_and_mac_only_hosts() {
        let view = HostsView {
            vlans: vec![VlanHostsView {
                vlan: 10,
                count: 3,
                subnets: vec![SubnetHostsView {
                    subnet: "198.18.10.0/24".into(),
                    count: 2,
                    hosts: vec![
                        host(
                            Some("198.18.10.1"),
                            "52:54:00:00:00:01",
                            "vm1",
                            "arp",
                            Some(4),
                        ),
                        host(
                            Some("198.18.10.20"),
                            "52:54:00:00:00:02",
                            "vm2",
                            "binding-dhcp",
                            None,
                        ),
                    ],
                }],
                mac_only: vec![host(None, "52:54:00:00:00:03", "vm3", "mac-only", None)],
            }],
            table: portcullis_api::HostTableStats {
                entries: 1,
                capacity: 16384,
                conflicts_reported: 1,
                conflicts_suppressed: 2,
                ..Default::default()
            },
        };
        let text = render(&view);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "VLAN 10: 3 hosts");
        assert_eq!(lines[1], "  198.18.10.0/24: 2 hosts");
        assert!(lines[2].starts_with("    IP ") && lines[2].contains("SOURCE"));
        assert!(
            lines[3].contains("198.18.10.1 ")
                && lines[3].contains("arp")
                && lines[3].ends_with("4s"),
            "{text}"
        );
        assert!(
            lines[4].contains("binding-dhcp") && lines[4].ends_with('-'),
            "{text}"
        );
        assert_eq!(lines[5], "  no address known: 1 host");
        assert!(
            lines[7].starts_with("    -") && lines[7].contains("mac-only"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "IP-seen table: 1 of 16384 entries; evicted 0; aged out 0; duplicate IPs reported 1, held down 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_empty_switch_says_so() {
        let view = HostsView {
            vlans: vec![],
            table: Default::default(),
        };
        assert!(render(&view).starts_with("no hosts known\n"));
    }
}
