//! The Prometheus metrics: a known exchange through a real data plane on in-memory
//! ports comes out of `render` with exact counter values; the text is valid
//! exposition format 0.0.4 (one HELP and TYPE per family, valid names, escaped
//! label values), read back by a small strict parser written here; and the HTTP
//! endpoint answers GET /metrics only (404 elsewhere, 405 for other methods, 503
//! when the data plane does not answer). No root needed.

mod common;

use common::{G1, G2, Running, eth, start_data_plane, three_port_switch, vid};
use portcullis_daemon::metrics::{self, CONTENT_TYPE, ControlStats, SCRAPE_TIMEOUT};
use portcullis_daemon::runtime::Command;
use portcullis_daemon::snapshot::{
    AclRuleView, CountersView, MacAclView, MacTableView, PortView, Snapshot, UplinkView,
};
use portcullis_dataplane::{AclAction, MacAclRule, MacAclSpec, MacAddr, StaticBindingSpec};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- a data plane on in-memory ports (tests/common) -----------------------------

const FORGED: [u8; 6] = [0x52, 0x54, 0, 0, 0, 66];
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
/// The local experimental EtherType: no rule of the test ACL permits it.
const EXPERIMENTAL: u16 = 0x88b5;

/// Ports: 0 `uplink` (trunk 10, native 1), 1 `g1` and 2 `g2` (access 10). `g1` has
/// the MAC ACL `guest-in` on ingress: 1 deny IPv6, 2 permit IPv4, implicit deny.
/// One static binding (G1, 198.18.0.11, VLAN 10) in a table of 64.
fn start() -> Running {
    let ethertype_rule = |action, ethertype| MacAclRule {
        action,
        src: None,
        dst: None,
        ethertype: Some(ethertype),
        vlan: None,
        cos: None,
    };
    let mut spec = three_port_switch();
    spec.ports[1].features.mac_acl_in = Some("guest-in".into());
    spec.mac_acls = vec![MacAclSpec {
        name: "guest-in".into(),
        rules: vec![
            ethertype_rule(AclAction::Deny, IPV6),
            ethertype_rule(AclAction::Permit, IPV4),
        ],
    }];
    spec.max_bindings = 64;
    spec.static_bindings = vec![StaticBindingSpec {
        mac: MacAddr(G1),
        ip: "198.18.0.11".parse().unwrap(),
        vid: vid(10),
        port: 1,
    }];
    start_data_plane(&spec)
}

/// The payload of the untagged frames here: 60 bytes each (14 header + 46).
const PAYLOAD: [u8; 46] = [0xab; 46];

/// The exchange every data-plane test here scrapes: 3 IPv4 frames g1 → g2
/// (forwarded), 1 experimental frame g1 → g2 (the ACL's implicit deny), 1 frame from
/// g2 with a forged source MAC (forged_transmit).
fn run_known_exchange(sw: &Running) -> Snapshot {
    for _ in 0..3 {
        let frame = eth(G2, G1, None, IPV4, &PAYLOAD);
        sw.handles[1].inject(&frame, None);
        assert_eq!(sw.next_tx(2), frame);
    }
    sw.handles[1].inject(&eth(G2, G1, None, EXPERIMENTAL, &PAYLOAD), None);
    sw.handles[2].inject(&eth(G1, FORGED, None, IPV4, &PAYLOAD), None);
    let snap = sw.snapshot_when(|s| {
        let rx = |n: &str| {
            s.ports
                .iter()
                .find(|p| p.name == n)
                .map_or(0, |p| p.counters.rx_frames)
        };
        rx("g1") == 4 && rx("g2") == 1
    });
    sw.assert_no_stray_copies();
    snap
}

const CONTROL: ControlStats = ControlStats {
    applies_ok: 5,
    applies_failed: 2,
    audit_records: 9,
    audit_forward_failures: 1,
    cluster: None,
};

// ---- a strict reader of the text exposition format ----------------------------

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Reads `{name="value",…}` from `s` (which starts after the `{`); returns the
/// labels and the rest after the `}`.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\": {rest:?}"))?;
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value: {after:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("invalid escape \\{other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("invalid escape in HELP: \\{other:?}")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Parses a whole scrape and checks what the format and Prometheus's naming rules
/// require: each family once, as a contiguous block with HELP and TYPE before its
/// samples; valid metric and label names; counters named `_total`; no series twice.
fn parse_exposition(text: &str) -> Result<Vec<Family>, String> {
    if !text.ends_with('\n') {
        return Err("the text does not end with a line feed".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let header = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        if let Some((what, rest)) = header {
            let (name, text) = rest
                .split_once(' ')
                .ok_or_else(|| format!("{what} without text: {line:?}"))?;
            if !is_metric_name(name) {
                return Err(format!("invalid metric name {name:?}"));
            }
            let current = match families.last_mut() {
                Some(f) if f.name == name && f.samples.is_empty() => f,
                _ => {
                    if !seen.insert(name.to_string()) {
                        return Err(format!("family {name} appears twice"));
                    }
                    families.push(Family {
                        name: name.into(),
                        help: None,
                        kind: None,
                        samples: Vec::new(),
                    });
                    families.last_mut().unwrap()
                }
            };
            let slot = if what == "HELP" {
                &mut current.help
            } else {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&text) {
                    return Err(format!("unknown type {text:?}"));
                }
                if text == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter {name} does not end with _total"));
                }
                &mut current.kind
            };
            if slot.is_some() {
                return Err(format!("two {what} lines for {name}"));
            }
            *slot = Some(if what == "HELP" {
                unescape_help(text)?
            } else {
                text.to_string()
            });
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| format!("sample without value: {line:?}"))?;
        let name = &line[..name_end];
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(inner) => parse_labels(inner)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| format!("no space before the value: {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("invalid value {value:?} in {line:?}"))?;
        let family = families
            .last_mut()
            .filter(|f| f.name == name)
            .ok_or_else(|| format!("sample {name} outside its family block"))?;
        if family.help.is_none() || family.kind.is_none() {
            return Err(format!("sample of {name} before its HELP and TYPE"));
        }
        let sample = Sample { labels, value };
        if family.samples.iter().any(|s| s.labels == sample.labels) {
            return Err(format!("series twice: {line:?}"));
        }
        family.samples.push(sample);
    }
    for f in &families {
        if f.help.is_none() || f.kind.is_none() {
            return Err(format!("family {} lacks HELP or TYPE", f.name));
        }
    }
    Ok(families)
}

struct Scrape(Vec<Family>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        match parse_exposition(text) {
            Ok(f) => Scrape(f),
            Err(e) => panic!("invalid exposition: {e}\n{text}"),
        }
    }

    fn family(&self, name: &str) -> &Family {
        self.0
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    fn samples(&self, name: &str) -> &[Sample] {
        &self.family(name).samples
    }

    /// The value of the one series of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples(name)
            .iter()
            .find(|s| s.labels == want)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in {:#?}", self.samples(name)))
            .value
    }
}

/// Every family `render` writes, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("portcullis_uptime_seconds", "gauge"),
    ("portcullis_port_up", "gauge"),
    ("portcullis_port_err_disabled", "gauge"),
    ("portcullis_port_frames_total", "counter"),
    ("portcullis_port_bytes_total", "counter"),
    ("portcullis_port_drops_total", "counter"),
    ("portcullis_port_io_losses_total", "counter"),
    ("portcullis_drops_total", "counter"),
    ("portcullis_mac_table_entries", "gauge"),
    ("portcullis_mac_table_capacity", "gauge"),
    ("portcullis_mac_table_learn_refused_total", "counter"),
    ("portcullis_bindings", "gauge"),
    ("portcullis_bindings_by_source", "gauge"),
    ("portcullis_binding_table_capacity", "gauge"),
    ("portcullis_held_acks_waiting", "gauge"),
    ("portcullis_uplink_up", "gauge"),
    ("portcullis_uplink_guests", "gauge"),
    ("portcullis_mac_acl_rule_hits_total", "counter"),
    ("portcullis_mac_acl_implicit_deny_hits_total", "counter"),
    ("portcullis_events_lost_total", "counter"),
    ("portcullis_config_applies_total", "counter"),
    ("portcullis_audit_records_total", "counter"),
    ("portcullis_audit_forward_failures_total", "counter"),
];

fn assert_all_families(scrape: &Scrape) {
    let names: Vec<&str> = scrape.0.iter().map(|f| f.name.as_str()).collect();
    let want: Vec<&str> = FAMILIES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want);
    for (name, kind) in FAMILIES {
        let f = scrape.family(name);
        assert_eq!(f.kind.as_deref(), Some(*kind), "{name}");
        assert!(name.starts_with("portcullis_"), "{name}");
        assert!(
            f.help.as_deref().is_some_and(|h| h.len() > 10),
            "{name} has a real HELP text"
        );
    }
}

// ---- render ---------------------------------------------------------------------

#[test]
fn a_known_exchange_renders_its_exact_counters() {
    let sw = start();
    let snap = run_known_exchange(&sw);
    let bindings = sw.bindings();
    let text = metrics::render(&snap, Some(&bindings), &CONTROL);
    let m = Scrape::parse(&text);
    assert_all_families(&m);

    let frames = "portcullis_port_frames_total";
    let bytes = "portcullis_port_bytes_total";
    let port_dir = |p: &'static str, d: &'static str| [("port", p), ("direction", d)];
    // g1 received 4 frames of 60 bytes (3 forwarded, 1 denied); g2 got 3 and
    // received the forged one; the uplink saw nothing.
    assert_eq!(m.value(frames, &port_dir("g1", "rx")), 4.0);
    assert_eq!(m.value(bytes, &port_dir("g1", "rx")), 240.0);
    assert_eq!(m.value(frames, &port_dir("g1", "tx")), 0.0);
    assert_eq!(m.value(bytes, &port_dir("g1", "tx")), 0.0);
    assert_eq!(m.value(frames, &port_dir("g2", "tx")), 3.0);
    assert_eq!(m.value(bytes, &port_dir("g2", "tx")), 180.0);
    assert_eq!(m.value(frames, &port_dir("g2", "rx")), 1.0);
    assert_eq!(m.value(bytes, &port_dir("g2", "rx")), 60.0);
    for d in ["rx", "tx"] {
        assert_eq!(m.value(frames, &port_dir("uplink", d)), 0.0);
        assert_eq!(m.value(bytes, &port_dir("uplink", d)), 0.0);
    }
    assert_eq!(m.samples(frames).len(), 6, "3 ports × 2 directions");

    // Exactly the two drops, each on its port and under its reason.
    let drops = m.samples("portcullis_port_drops_total");
    assert_eq!(drops.len(), 2, "{drops:#?}");
    assert_eq!(
        m.value(
            "portcullis_port_drops_total",
            &[
                ("port", "g1"),
                ("direction", "rx"),
                ("reason", "mac_acl_deny")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "portcullis_port_drops_total",
            &[
                ("port", "g2"),
                ("direction", "rx"),
                ("reason", "forged_transmit")
            ]
        ),
        1.0
    );
    assert_eq!(m.samples("portcullis_drops_total").len(), 2);
    assert_eq!(
        m.value("portcullis_drops_total", &[("reason", "mac_acl_deny")]),
        1.0
    );
    assert_eq!(
        m.value("portcullis_drops_total", &[("reason", "forged_transmit")]),
        1.0
    );

    // The ACL: rule 1 (deny IPv6) never matched, rule 2 (permit IPv4) three times,
    // the implicit deny once.
    let hits = "portcullis_mac_acl_rule_hits_total";
    assert_eq!(m.value(hits, &[("acl", "guest-in"), ("seq", "1")]), 0.0);
    assert_eq!(m.value(hits, &[("acl", "guest-in"), ("seq", "2")]), 3.0);
    assert_eq!(m.samples(hits).len(), 2);
    assert_eq!(
        m.value(
            "portcullis_mac_acl_implicit_deny_hits_total",
            &[("acl", "guest-in")]
        ),
        1.0
    );

    for (port, role) in [("uplink", "uplink"), ("g1", "guest"), ("g2", "guest")] {
        assert_eq!(
            m.value("portcullis_port_up", &[("port", port), ("role", role)]),
            1.0
        );
        assert_eq!(
            m.value(
                "portcullis_port_err_disabled",
                &[("port", port), ("cause", "")]
            ),
            0.0
        );
    }
    assert_eq!(
        m.value(
            "portcullis_uplink_up",
            &[("uplink", "uplink"), ("interface", "mem0")]
        ),
        1.0
    );
    assert_eq!(
        m.value("portcullis_uplink_guests", &[("uplink", "uplink")]),
        2.0
    );

    assert_eq!(
        m.value("portcullis_mac_table_entries", &[]),
        snap.mac_table.entries.len() as f64
    );
    assert!(
        snap.mac_table.entries.len() >= 2,
        "the guests' MACs: {:#?}",
        snap.mac_table
    );
    assert_eq!(m.value("portcullis_mac_table_capacity", &[]), 16.0);
    assert_eq!(
        m.value("portcullis_mac_table_learn_refused_total", &[]),
        0.0
    );
    assert_eq!(m.value("portcullis_bindings", &[]), 1.0);
    let by_source = "portcullis_bindings_by_source";
    assert_eq!(
        m.value(by_source, &[("source", "static"), ("family", "ipv4")]),
        1.0
    );
    assert_eq!(m.samples(by_source).len(), 10, "5 sources x 2 families");
    let total: f64 = m.samples(by_source).iter().map(|s| s.value).sum();
    assert_eq!(total, 1.0, "the sources add up to the table");
    assert_eq!(m.value("portcullis_binding_table_capacity", &[]), 64.0);
    assert_eq!(m.value("portcullis_held_acks_waiting", &[]), 0.0);
    assert_eq!(m.value("portcullis_events_lost_total", &[]), 0.0);
    assert_eq!(
        m.value("portcullis_uptime_seconds", &[]),
        snap.uptime_secs as f64
    );

    let applies = "portcullis_config_applies_total";
    assert_eq!(m.value(applies, &[("result", "ok")]), 5.0);
    assert_eq!(m.value(applies, &[("result", "failed")]), 2.0);
    assert_eq!(m.value("portcullis_audit_records_total", &[]), 9.0);
    assert_eq!(m.value("portcullis_audit_forward_failures_total", &[]), 1.0);
}

#[test]
fn without_bindings_the_binding_families_have_headers_only() {
    let sw = start();
    let snap = run_known_exchange(&sw);
    let m = Scrape::parse(&metrics::render(&snap, None, &ControlStats::default()));
    assert_all_families(&m);
    for name in [
        "portcullis_bindings",
        "portcullis_bindings_by_source",
        "portcullis_binding_table_capacity",
        "portcullis_held_acks_waiting",
    ] {
        assert!(m.samples(name).is_empty(), "{name}");
    }
    assert_eq!(
        m.value("portcullis_config_applies_total", &[("result", "ok")]),
        0.0
    );
}

// ---- snapshots built by hand: escaping, error-disabled ports ---------------------

fn port(id: u16, name: &str, role: &str) -> PortView {
    PortView {
        id,
        name: name.into(),
        role: role.into(),
        interface: format!("if{id}"),
        backend: "af_packet".into(),
        xdp_mode: None,
        port_group: None,
        vlan: portcullis_api::VlanView::Access { vid: 10 },
        state: "up".into(),
        err_disabled: None,
        initial_mac: None,
        effective_mac: None,
        mac_change_blocked: false,
        security: BTreeMap::new(),
        uplink: None,
        counters: CountersView::default(),
        io: Default::default(),
        runtime: false,
        owner: Default::default(),
    }
}

fn snapshot_of(ports: Vec<PortView>) -> Snapshot {
    Snapshot {
        switch: "hand".into(),
        uptime_secs: 42,
        ports,
        mac_table: MacTableView {
            capacity: 8,
            entries: Vec::new(),
            learn_refused: 3,
            aged_out: 0,
        },
        drops: BTreeMap::new(),
        events_lost: 7,
        batches: 0,
        port_security: Vec::new(),
        mac_acls: Vec::new(),
        uplinks: Vec::new(),
    }
}

#[test]
fn label_values_with_quotes_backslashes_and_newlines_are_escaped() {
    let nasty = "a\"b\\c\nd";
    let mut p = port(0, nasty, "guest");
    p.counters.rx_frames = 11;
    p.counters.rx_drops.insert("forged_transmit".into(), 2);
    let mut s = snapshot_of(vec![p]);
    s.uplinks.push(UplinkView {
        name: "up\"1".into(),
        interface: "eth\\0".into(),
        state: "link-down".into(),
        vlan: portcullis_api::VlanView::trunk([10], None),
        guests: vec![nasty.into()],
        rx_frames: 0,
        tx_frames: 0,
    });
    s.mac_acls.push(MacAclView {
        name: "acl\n".into(),
        rules: vec![AclRuleView {
            seq: 1,
            rule: "permit any".into(),
            hits: 4,
        }],
        implicit_deny_hits: 0,
        bound_in: Vec::new(),
        bound_out: Vec::new(),
        cache_hits: 0,
        cache_misses: 0,
    });
    let text = metrics::render(&s, None, &ControlStats::default());

    // On the wire: escaped, and no sample is broken over two lines.
    assert!(
        text.contains(r#"portcullis_port_frames_total{port="a\"b\\c\nd",direction="rx"} 11"#),
        "{text}"
    );
    assert!(
        text.contains(r#"portcullis_uplink_up{uplink="up\"1",interface="eth\\0"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"portcullis_mac_acl_rule_hits_total{acl="acl\n",seq="1"} 4"#),
        "{text}"
    );
    // Read back: the original strings.
    let m = Scrape::parse(&text);
    assert_eq!(
        m.value(
            "portcullis_port_drops_total",
            &[
                ("port", nasty),
                ("direction", "rx"),
                ("reason", "forged_transmit")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.value("portcullis_uplink_guests", &[("uplink", "up\"1")]),
        1.0
    );
    assert_eq!(
        m.value("portcullis_mac_table_learn_refused_total", &[]),
        3.0
    );
    assert_eq!(m.value("portcullis_events_lost_total", &[]), 7.0);
    assert_eq!(m.value("portcullis_uptime_seconds", &[]), 42.0);
}

#[test]
fn an_error_disabled_port_is_down_with_its_cause() {
    let mut shut = port(1, "g1", "guest");
    shut.state = "err-disabled".into();
    shut.err_disabled = Some("port_security".into());
    let mut admin_down = port(2, "g2", "guest");
    admin_down.state = "down".into();
    let s = snapshot_of(vec![port(0, "uplink", "uplink"), shut, admin_down]);
    let m = Scrape::parse(&metrics::render(&s, None, &ControlStats::default()));
    let up = "portcullis_port_up";
    assert_eq!(m.value(up, &[("port", "uplink"), ("role", "uplink")]), 1.0);
    assert_eq!(m.value(up, &[("port", "g1"), ("role", "guest")]), 0.0);
    assert_eq!(m.value(up, &[("port", "g2"), ("role", "guest")]), 0.0);
    let ed = "portcullis_port_err_disabled";
    assert_eq!(
        m.value(ed, &[("port", "g1"), ("cause", "port_security")]),
        1.0
    );
    assert_eq!(m.value(ed, &[("port", "g2"), ("cause", "")]), 0.0);
    assert_eq!(m.samples(ed).len(), 3, "one series per port");
}

#[test]
fn the_reader_rejects_what_the_format_forbids() {
    // The checks above are only as good as the reader: make sure it can fail.
    for bad in [
        "# HELP x_total x\n# TYPE x_total counter\nx_total 1",
        "x 1\n",
        "# HELP x x\nx 1\n",
        "# HELP x_total x\n# TYPE x_total counter\nx_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n",
        "# HELP x x\n# TYPE x counter\nx 1\n",
        "# HELP x x\n# TYPE x gauge\nx{a=\"b\\q\"} 1\n",
        "# HELP x x\n# TYPE x gauge\nx{a=\"b} 1\n",
        "# HELP x x\n# TYPE x gauge\nx{0a=\"b\"} 1\n",
        "# HELP 0x x\n# TYPE 0x gauge\n",
        "# HELP x x\n# TYPE x gauge\n# HELP y y\n# TYPE y gauge\n# HELP x x\n",
        "# HELP x x\n# TYPE x gauge\nx one\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
    let good =
        "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{a=\"q\\\"\\n\\\\\"} 1\n";
    let f = parse_exposition(good).unwrap();
    assert_eq!(f[0].help.as_deref(), Some("a \\ b\nc"));
    assert_eq!(f[0].samples[0].labels["a"], "q\"\n\\");
}

proptest! {
    /// Whatever the names (any Unicode, quotes, backslashes, line feeds), the
    /// rendered text is valid and reads back to the same names and values.
    #[test]
    fn any_names_read_back_unchanged(
        port_name in "\\PC*|[\"\\\\\n\r\t a-zé]{0,12}",
        acl_name in "\\PC*|[\"\\\\\n\r\t a-zé]{0,12}",
        frames in any::<u32>(),
    ) {
        let mut p = port(0, &port_name, "guest");
        p.counters.tx_frames = u64::from(frames);
        let mut s = snapshot_of(vec![p]);
        s.mac_acls.push(MacAclView {
            name: acl_name.clone(),
            rules: Vec::new(),
            implicit_deny_hits: 5,
            bound_in: Vec::new(),
            bound_out: Vec::new(),
            cache_hits: 0,
            cache_misses: 0,
        });
        let text = metrics::render(&s, None, &ControlStats::default());
        let parsed = parse_exposition(&text);
        prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), text);
        let m = Scrape(parsed.unwrap());
        prop_assert_eq!(
            m.value("portcullis_port_frames_total", &[("port", &port_name), ("direction", "tx")]),
            f64::from(frames)
        );
        prop_assert_eq!(
            m.value("portcullis_mac_acl_implicit_deny_hits_total", &[("acl", &acl_name)]),
            5.0
        );
    }
}

// ---- serve ----------------------------------------------------------------------

struct HttpAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its end.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> HttpAnswer {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw))
        .await
        .expect("the endpoint answers")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let answer = HttpAnswer {
        status,
        headers,
        body: body.to_string(),
    };
    assert_eq!(answer.header("transfer-encoding"), None, "a sized body");
    answer
}

/// Starts `serve` on 127.0.0.1:0; returns its address, the shutdown trigger and
/// the task.
async fn start_endpoint(
    commands: std::sync::mpsc::Sender<Command>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let control: Arc<dyn Fn() -> ControlStats + Send + Sync> = Arc::new(|| CONTROL);
    let task = tokio::spawn(metrics::serve(listener, commands.into(), control, async {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_serves_get_metrics_and_nothing_else() {
    let sw = tokio::task::spawn_blocking(|| {
        let sw = start();
        run_known_exchange(&sw);
        sw
    })
    .await
    .unwrap();
    let (addr, stop, task) = start_endpoint(sw.commands.clone()).await;

    let ok = http(addr, "GET", "/metrics").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let ct = ok.header("content-type").unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(ct, CONTENT_TYPE);
    let m = Scrape::parse(&ok.body);
    assert_all_families(&m);
    assert_eq!(
        m.value(
            "portcullis_port_frames_total",
            &[("port", "g1"), ("direction", "rx")]
        ),
        4.0
    );
    assert_eq!(m.value("portcullis_bindings", &[]), 1.0);
    assert_eq!(m.value("portcullis_audit_records_total", &[]), 9.0);

    let head = http(addr, "HEAD", "/metrics").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    for path in ["/", "/metrics/", "/metrics/x", "/api/v1/ports"] {
        let nf = http(addr, "GET", path).await;
        assert_eq!(nf.status, 404, "{path}");
        assert!(nf.body.contains("/metrics"), "{path}: {:?}", nf.body);
    }
    for method in ["POST", "PUT", "DELETE"] {
        let na = http(addr, method, "/metrics").await;
        assert_eq!(na.status, 405, "{method}");
        assert!(!na.body.is_empty(), "{method}");
        assert_eq!(na.header("allow"), Some("GET, HEAD"));
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns once shutdown resolves")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    tokio::task::spawn_blocking(move || drop(sw)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_that_does_not_answer_gets_503() {
    // Commands are received but never answered: the scrape gives up after 2 s.
    let (commands, silent) = std::sync::mpsc::channel::<Command>();
    let (addr, stop, task) = start_endpoint(commands).await;
    let asked = WallClock::now();
    let slow = http(addr, "GET", "/metrics").await;
    assert_eq!(slow.status, 503);
    assert!(!slow.body.is_empty());
    assert!(asked.elapsed() >= SCRAPE_TIMEOUT);
    assert!(matches!(silent.try_recv(), Ok(Command::Snapshot(_))));
    stop.send(()).unwrap();
    task.await.unwrap();

    // The data-plane thread is gone: 503 at once.
    let (commands, gone) = std::sync::mpsc::channel::<Command>();
    drop(gone);
    let (addr, stop, task) = start_endpoint(commands).await;
    let asked = WallClock::now();
    let dead = http(addr, "GET", "/metrics").await;
    assert_eq!(dead.status, 503);
    assert!(dead.body.contains("not running"), "{:?}", dead.body);
    assert!(asked.elapsed() < SCRAPE_TIMEOUT);
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// A cluster member's agent adds its families, after the single host's, with the
/// agent's values; a single host has none of them.
#[test]
fn a_cluster_member_adds_the_agents_families() {
    let sw = start();
    let snap = run_known_exchange(&sw);
    let control = ControlStats {
        cluster: Some(portcullis_cluster::ClusterStats {
            connected: true,
            owned_ports: 3,
            dirty_ports: 1,
            writes: 40,
            write_failures: 2,
            reconciles: 5,
            claims: 7,
            claims_lost: 1,
        }),
        ..ControlStats::default()
    };
    let m = Scrape::parse(&metrics::render(&snap, None, &control));
    let want = [
        ("portcullis_cluster_connected", 1.0),
        ("portcullis_cluster_owned_ports", 3.0),
        ("portcullis_cluster_pending_ports", 1.0),
        ("portcullis_cluster_binding_writes_total", 40.0),
        ("portcullis_cluster_binding_write_failures_total", 2.0),
        ("portcullis_cluster_reconciles_total", 5.0),
        ("portcullis_cluster_claims_total", 7.0),
        ("portcullis_cluster_claims_lost_total", 1.0),
    ];
    for (name, v) in want {
        assert_eq!(m.value(name, &[]), v, "{name}");
        assert!(m.family(name).help.as_deref().is_some_and(|h| h.len() > 10));
    }
    let single = Scrape::parse(&metrics::render(&snap, None, &ControlStats::default()));
    assert_all_families(&single);
    assert!(
        single
            .0
            .iter()
            .all(|f| !f.name.starts_with("portcullis_cluster_"))
    );
}

/// A switch with an overlay adds the overlay's families after the others: a
/// series per remote endpoint (labelled by its address) with its frames, bytes
/// and drops by reason, and the table's counts; the whole scrape is still valid
/// (each family once).
#[test]
fn an_overlay_adds_its_families_with_a_series_per_endpoint() {
    use portcullis_api::{OverlayEndpointCounters, OverlayEndpointView, OverlayView};
    let sw = start();
    let snap = run_known_exchange(&sw);
    let endpoint = |address: &str, source: &str, macs: usize, n: u64| OverlayEndpointView {
        address: address.into(),
        source: source.into(),
        vlans: vec![10],
        macs,
        counters: OverlayEndpointCounters {
            rx_frames: n,
            rx_bytes: 100 * n,
            tx_frames: n + 1,
            tx_bytes: 100 * (n + 1),
            forged_source: n + 2,
            bad_header: n + 3,
        },
    };
    let overlay = OverlayView {
        port: "overlay".into(),
        local_ip: "198.18.100.1".into(),
        udp_port: 4789,
        interface: None,
        arp_proxy: false,
        vnis: Vec::new(),
        endpoints: vec![
            endpoint("198.18.100.2", "configured", 1, 10),
            endpoint("fd00:198:18:100::3", "cluster", 2, 20),
        ],
        remote_mac_count: 3,
        remote_macs: Vec::new(),
        refused_macs: 4,
        refused_endpoints: 5,
        unknown_endpoint: 6,
    };
    let text =
        metrics::render(&snap, None, &ControlStats::default()) + &metrics::render_overlay(&overlay);
    let m = Scrape::parse(&text);
    let names: Vec<&str> = m.0.iter().map(|f| f.name.as_str()).collect();
    let (single, added) = names.split_at(FAMILIES.len());
    assert_eq!(single, FAMILIES.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    assert!(added.iter().all(|n| n.starts_with("portcullis_overlay_")));
    assert_eq!(m.value("portcullis_overlay_remote_macs", &[]), 3.0);
    assert_eq!(
        m.value("portcullis_overlay_endpoints", &[("source", "configured")]),
        1.0
    );
    assert_eq!(
        m.value("portcullis_overlay_endpoints", &[("source", "cluster")]),
        1.0
    );
    assert_eq!(m.value("portcullis_overlay_refused_macs_total", &[]), 4.0);
    assert_eq!(
        m.value("portcullis_overlay_refused_endpoints_total", &[]),
        5.0
    );
    assert_eq!(
        m.value("portcullis_overlay_unknown_endpoint_datagrams_total", &[]),
        6.0
    );
    let v6 = "fd00:198:18:100::3";
    assert_eq!(
        m.value("portcullis_overlay_endpoint_macs", &[("endpoint", v6)]),
        2.0
    );
    for (direction, frames, bytes) in [("rx", 20.0, 2000.0), ("tx", 21.0, 2100.0)] {
        let l = [("endpoint", v6), ("direction", direction)];
        assert_eq!(
            m.value("portcullis_overlay_endpoint_frames_total", &l),
            frames
        );
        assert_eq!(
            m.value("portcullis_overlay_endpoint_bytes_total", &l),
            bytes
        );
    }
    for (reason, n) in [
        ("overlay_forged_source", 12.0),
        ("overlay_bad_header", 13.0),
    ] {
        assert_eq!(
            m.value(
                "portcullis_overlay_endpoint_drops_total",
                &[("endpoint", "198.18.100.2"), ("reason", reason)]
            ),
            n
        );
    }
    for name in added {
        let f = m.family(name);
        assert!(f.help.as_deref().is_some_and(|h| h.len() > 10), "{name}");
        assert_eq!(
            f.kind.as_deref(),
            Some(if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            }),
            "{name}"
        );
    }
}
