//! NIC teaming: compilation, merging of group and port settings, and one located
//! error per rule of docs/config.md §6.

use super::features::{compile, features, opt_kv};
use super::*;
use portcullis_dataplane::TeamingPolicy::{
    ExplicitFailover, IpHash, OriginatingPort, SourceMacHash,
};

/// BASE with the uplinks `uplink1..=uplinkN` (on `eth0..`).
fn with_uplinks(n: usize) -> String {
    let names: Vec<String> = (1..=n).map(|i| format!("\"uplink{i}\"")).collect();
    let nics: String = (1..=n)
        .map(|i| format!("uplink{i} = \"eth{}\"\n", i - 1))
        .collect();
    BASE.replace(
        "uplinks = [\"uplink1\"]",
        &format!("uplinks = [{}]", names.join(", ")),
    )
    .replace("uplink1 = \"eth0\"\n", &nics)
}

/// Two uplinks, and `line` added to the "web" port group.
fn web_team(line: &str) -> String {
    with_uplinks(2).replacen("vlan = 10\n", &format!("vlan = 10\n{line}\n"), 1)
}

fn team(policy: TeamingPolicy, active: &[&str], standby: &[&str], failback: bool) -> TeamingSpec {
    let names = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
    TeamingSpec {
        policy,
        active: names(active),
        standby: names(standby),
        failback,
    }
}

// ---- compilation ---------------------------------------------------------------

#[test]
fn a_teaming_table_alone_is_originating_port_over_every_uplink() {
    let c = compile(&web_team("teaming = {}"));
    assert_eq!(
        features(&c, "vm1").teaming,
        Some(team(OriginatingPort, &["uplink1", "uplink2"], &[], true))
    );
    // Teaming is a guest port's: the uplinks have none.
    assert_eq!(features(&c, "uplink1").teaming, None);
    assert_eq!(features(&c, "uplink2").teaming, None);
    c.spec.check().unwrap();
    // Without a table the spec says nothing, and the data plane applies the same
    // default.
    assert_eq!(features(&compile(&with_uplinks(2)), "vm1").teaming, None);
    // `standby` alone: the other uplinks are active, in uplink_policy.uplinks order.
    let src = with_uplinks(3).replacen(
        "vlan = 10\n",
        "vlan = 10\nteaming = { standby = [\"uplink2\"] }\n",
        1,
    );
    assert_eq!(
        features(&compile(&src), "vm1").teaming,
        Some(team(
            OriginatingPort,
            &["uplink1", "uplink3"],
            &["uplink2"],
            true
        ))
    );
}

#[test]
fn the_four_policies_compile() {
    for (word, policy) in [
        ("originating-port", OriginatingPort),
        ("source-mac-hash", SourceMacHash),
        ("ip-hash", IpHash),
        ("explicit-failover", ExplicitFailover),
    ] {
        let c = compile(&web_team(&format!(
            "teaming = {{ policy = \"{word}\", active = [\"uplink2\", \"uplink1\"], failback = false }}"
        )));
        assert_eq!(
            features(&c, "vm1").teaming,
            Some(team(policy, &["uplink2", "uplink1"], &[], false)),
            "{word}"
        );
    }
    // The words list of the model is the documented one, in order.
    let words: Vec<&str> = TEAMING_POLICY_WORDS.iter().map(|(w, _)| *w).collect();
    assert_eq!(
        words,
        [
            "originating-port",
            "source-mac-hash",
            "ip-hash",
            "explicit-failover"
        ]
    );
}

#[test]
fn teaming_overrides_merge_field_by_field() {
    let src = with_uplinks(2)
        + r#"
[[port_group]]
name = "app"
vlan = 20
teaming = { policy = "explicit-failover", active = ["uplink1"], standby = ["uplink2"], failback = false }

[[host.port]]
name = "inherits"
interface = "tap2"
port_group = "app"

[[host.port]]
name = "swapped"
interface = "tap3"
port_group = "app"
teaming = { active = ["uplink2"], standby = ["uplink1"] }

[[host.port]]
name = "hashed"
interface = "tap4"
port_group = "app"
teaming = { policy = "source-mac-hash", failback = true }

[[host.port]]
name = "no-standby"
interface = "tap5"
port_group = "app"
teaming.standby = []

[[host.port]]
name = "opts-in"
interface = "tap6"
port_group = "db"
teaming = { policy = "ip-hash" }

[[host.port]]
name = "plain"
interface = "tap7"
port_group = "db"
"#;
    let c = compile(&src);
    let t = |port: &str| features(&c, port).teaming.clone();
    let group = team(ExplicitFailover, &["uplink1"], &["uplink2"], false);
    assert_eq!(t("inherits"), Some(group.clone()));
    assert_eq!(
        t("swapped"),
        Some(team(ExplicitFailover, &["uplink2"], &["uplink1"], false)),
        "active and standby replaced whole, the rest from the group"
    );
    assert_eq!(
        t("hashed"),
        Some(TeamingSpec {
            policy: SourceMacHash,
            failback: true,
            ..group.clone()
        })
    );
    assert_eq!(
        t("no-standby"),
        Some(team(ExplicitFailover, &["uplink1"], &[], false))
    );
    assert_eq!(
        t("opts-in"),
        Some(team(IpHash, &["uplink1", "uplink2"], &[], true)),
        "a port may team where its group does not"
    );
    assert_eq!(t("plain"), None);
    assert_eq!(t("vm1"), None);
    c.spec.check().unwrap();
    // The model keeps what was written.
    let config = parse_str(&src, P, None).unwrap();
    assert_eq!(
        config.host.ports[2].teaming,
        Some(TeamingOverride {
            policy: None,
            active: Some(vec!["uplink2".into()]),
            standby: Some(vec!["uplink1".into()]),
            failback: None,
        })
    );
    assert_eq!(
        config.host.ports[4].teaming,
        Some(TeamingOverride {
            standby: Some(vec![]),
            ..Default::default()
        })
    );
}

#[test]
fn a_team_may_carry_the_native_vlan_and_host_local_vlans_need_no_team() {
    // The uplinks carry the native VLAN untagged: a group of that VLAN may team.
    let src = web_team("teaming = {}")
        .replace(
            "allowed_vlans = [10, 20]",
            "allowed_vlans = [10, 20]\nnative_vlan = 1",
        )
        .replacen("vlan = 20\n", "vlan = 1\nteaming = {}\n", 1);
    compile(&src);
    // A group without a team keeps VLANs the uplinks do not carry host-local.
    let src = with_uplinks(2).replacen("vlan = 20\n", "vlan = 30\n", 1);
    assert_eq!(features(&compile(&src), "vm1").teaming, None);
}

// ---- errors --------------------------------------------------------------------

#[test]
fn unknown_uplinks_list_the_known_ones() {
    let src = web_team(r#"teaming = { active = ["uplink1", "uplink3"], standby = ["eth1"] }"#);
    let errs = errors_of(&src);
    let line = line_of(&src, "teaming =");
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].teaming.active[1]",
        "unknown uplink \"uplink3\"",
    );
    assert!(
        e.message
            .contains("known uplinks: \"uplink1\", \"uplink2\" (uplink_policy.uplinks)"),
        "{e}"
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].teaming.standby[0]",
        "unknown uplink \"eth1\"",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    // On a port.
    let src = with_uplinks(2) + "teaming = { active = [\"uplink9\"] }\n";
    expect(
        &src,
        "teaming =",
        "host.port[0].teaming.active[0]",
        "unknown uplink \"uplink9\"; known uplinks: \"uplink1\", \"uplink2\"",
    );
}

#[test]
fn an_uplink_is_listed_once_in_one_list() {
    let src = web_team(
        r#"teaming = { active = ["uplink1", "uplink1"], standby = ["uplink2", "uplink1", "uplink2"] }"#,
    );
    let errs = errors_of(&src);
    let line = line_of(&src, "teaming =");
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].teaming.active[1]",
        "uplink \"uplink1\" is listed twice (first as port_group[0].teaming.active[0])",
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].teaming.standby[1]",
        &format!(
            "uplink \"uplink1\" is both active and standby (port_group[0].teaming.active[0] at line {line} lists it too)"
        ),
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].teaming.standby[2]",
        "listed twice (first as port_group[0].teaming.standby[0])",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn a_port_list_may_not_repeat_the_other_list_of_its_group() {
    let group = r#"teaming = { active = ["uplink1"], standby = ["uplink2"] }"#;
    // The port's active list against the group's standby list.
    let src = web_team(group) + "teaming = { active = [\"uplink2\"] }\n";
    let group_line = line_of(&src, group);
    let e = expect(
        &src,
        "teaming = { active = [\"uplink2\"] }",
        "host.port[0].teaming.active[0]",
        "uplink \"uplink2\" is both active and standby",
    );
    assert!(
        e.message.contains(&format!(
            "port_group[0].teaming.standby[0] at line {group_line}"
        )),
        "{e}"
    );
    // The port's standby list against the group's active list.
    let src = web_team(group) + "teaming.standby = [\"uplink1\"]\n";
    let e = expect(
        &src,
        "teaming.standby",
        "host.port[0].teaming.standby[0]",
        "both active and standby",
    );
    assert!(e.message.contains("port_group[0].teaming.active[0]"), "{e}");
    assert_eq!(errors_of(&src).len(), 1);
    // Both lists of its own: nothing of the group's counts.
    let src = web_team(group) + "teaming = { active = [\"uplink2\"], standby = [\"uplink1\"] }\n";
    compile(&src);
}

#[test]
fn no_active_uplink() {
    let src = web_team("teaming = { active = [], standby = [\"uplink2\"] }");
    let e = expect(
        &src,
        "teaming =",
        "port_group[0].teaming.active",
        "the active list is empty",
    );
    assert_eq!(e.column, Some(13));
    let src = with_uplinks(2) + "teaming.active = []\n";
    expect(
        &src,
        "teaming.active",
        "host.port[0].teaming.active",
        "the active list is empty",
    );
    // Defaulted `active` with every uplink on standby.
    let src = web_team("teaming = { standby = [\"uplink2\", \"uplink1\"] }");
    expect(
        &src,
        "teaming =",
        "port_group[0].teaming.standby",
        "standby lists every uplink, which leaves none active: state `active`",
    );
    // The same list with an explicit active list is a both-lists error instead.
    let src =
        web_team("teaming = { active = [\"uplink1\"], standby = [\"uplink2\", \"uplink1\"] }");
    let errs = errors_of(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "port_group[0].teaming.standby[1]");
}

#[test]
fn teaming_needs_uplinks() {
    let src = "[switch]\nname = \"t\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\nteaming = { policy = \"ip-hash\" }\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"tap1\"\nport_group = \"web\"\nteaming.failback = false\n";
    let errs = errors_of(src);
    expect_in(
        &errs,
        P,
        7,
        "port_group[0].teaming",
        "the profile has no [uplink_policy]",
    );
    expect_in(
        &errs,
        P,
        13,
        "host.port[0].teaming",
        "the profile has no [uplink_policy]",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    // An [uplink_policy] with no uplinks.
    let src = BASE
        .replace("uplinks = [\"uplink1\"]", "uplinks = []")
        .replace("uplink1 = \"eth0\"\n", "")
        .replacen(
            "vlan = 10\n",
            "vlan = 10\nteaming = { active = [\"uplink1\"] }\n",
            1,
        );
    let errs = errors_of(&src);
    let e = expect_in(
        &errs,
        P,
        line_of(&src, "teaming ="),
        "port_group[0].teaming",
        "uplink_policy.uplinks is empty (uplink_policy.uplinks at line 5)",
    );
    assert!(e.message.contains("or remove `teaming`"), "{e}");
    assert_eq!(
        errs.len(),
        1,
        "the unknown uplink follows from it: {errs:#?}"
    );
}

#[test]
fn teaming_words_and_shape() {
    let src = web_team("teaming = { policy = \"lacp\" }");
    let e = expect(
        &src,
        "teaming =",
        "port_group[0].teaming.policy",
        "\"lacp\" is not a teaming policy",
    );
    assert!(
        e.message.ends_with(
            "expected \"originating-port\", \"source-mac-hash\", \"ip-hash\" or \"explicit-failover\""
        ),
        "{e}"
    );
    let src = with_uplinks(2) + "teaming = { policy = \"originating_port\" }\n";
    expect(
        &src,
        "teaming =",
        "host.port[0].teaming.policy",
        "\"originating_port\" is not a teaming policy",
    );
    // Shape: unknown keys and wrong types.
    let src = web_team("teaming = { policy = \"ip-hash\", mode = \"lacp\" }");
    expect(
        &src,
        "teaming =",
        "port_group[0].teaming.mode",
        "unknown field `mode`, expected one of `policy`, `active`, `standby`, `failback`",
    );
    let src = web_team("teaming = \"ip-hash\"");
    expect(
        &src,
        "teaming =",
        "port_group[0].teaming",
        "invalid type: string \"ip-hash\"",
    );
    let src = web_team("teaming = { failback = \"yes\" }");
    expect(
        &src,
        "teaming =",
        "port_group[0].teaming.failback",
        "expected a boolean",
    );
    let src = web_team("teaming = { active = \"uplink1\" }");
    expect(
        &src,
        "teaming =",
        "port_group[0].teaming.active",
        "expected an array",
    );
}

#[test]
fn teaming_in_uplink_policy_is_refused() {
    let src = with_uplinks(2).replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nteaming = { policy = \"ip-hash\" }",
    );
    expect(
        &src,
        "teaming =",
        "uplink_policy.teaming",
        "teaming is set per [[port_group]] or [[host.port]]",
    );
}

#[test]
fn a_team_must_carry_the_groups_vlans() {
    // An access group.
    let src =
        web_team("teaming = { active = [\"uplink1\"] }").replacen("vlan = 10\n", "vlan = 30\n", 1);
    let e = expect(
        &src,
        "teaming =",
        "port_group[0].teaming",
        "VLAN 30 of port group \"web\" is not allowed",
    );
    assert_eq!(
        e.message,
        "VLAN 30 of port group \"web\" is not allowed on the uplinks of its team (\"uplink1\"): the uplinks carry 10, 20 (uplink_policy.allowed_vlans at line 6); add it to uplink_policy.allowed_vlans, or remove `teaming` to keep it host-local"
    );
    // A guest-tagging trunk: every VLAN not carried, with the native VLAN.
    let src = web_team("").replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nnative_vlan = 1",
    ) + "\n[[port_group]]\nname = \"vgt\"\nvlans = [10, \"11-13\", 20, 99]\nnative_vlan = 1\nteaming = { standby = [\"uplink1\"] }\n";
    let e = expect(
        &src,
        "teaming =",
        "port_group[2].teaming",
        "VLANs 11-13, 99 of port group \"vgt\" are not allowed on the uplinks of its team (\"uplink2\", \"uplink1\"): the uplinks carry 1, 10, 20 (uplink_policy.allowed_vlans at line 6, native_vlan 1); add them",
    );
    assert!(e.message.ends_with("keep them host-local"), "{e}");
    // A port's own team in a group without one.
    let src = with_uplinks(2).replacen("vlan = 20\n", "vlan = 40\n", 1)
        + "\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"db\"\nteaming = { policy = \"ip-hash\" }\n";
    expect(
        &src,
        "teaming =",
        "host.port[1].teaming",
        "VLAN 40 of port \"vm2\" (port group \"db\") is not allowed on the uplinks of its team (\"uplink1\", \"uplink2\")",
    );
    // A group that teams reports once, not once per port that also teams.
    let src = web_team("teaming = {}").replacen("vlan = 10\n", "vlan = 30\n", 1)
        + "teaming = { failback = false }\n";
    let errs = errors_of(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "port_group[0].teaming");
}

#[test]
fn no_vlan_error_follows_from_an_invalid_vlan() {
    // A bad uplink VLAN list: which VLANs the uplinks carry is unknown.
    let src = web_team("")
        .replace("allowed_vlans = [10, 20]", "allowed_vlans = [10, \"20-\"]")
        .replacen("vlan = 20\n", "vlan = 20\nteaming = {}\n", 1);
    let errs = errors_of(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "uplink_policy.allowed_vlans[1]");
    // A bad group VLAN.
    let src = web_team("teaming = {}").replacen("vlan = 10\n", "vlan = 5000\n", 1);
    let errs = errors_of(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].key, "port_group[0].vlan");
}

#[test]
fn teaming_errors_are_all_reported_in_file_order() {
    let src = r#"[switch]
name = "t"

[uplink_policy]
uplinks = ["uplink1", "uplink2"]
allowed_vlans = [10]

[[port_group]]
name = "web"
vlan = 10
teaming = { policy = "round-robin", active = ["uplink1", "uplink3"] }

[[port_group]]
name = "db"
vlan = 20
teaming = { standby = ["uplink2", "uplink1"] }

[host.uplinks]
uplink1 = "eth0"
uplink2 = "eth1"

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"
teaming = { active = [] }
"#;
    let errs = errors_of(src);
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let lines: Vec<usize> = errs.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [11, 11, 16, 16, 26], "{shown:#?}");
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "port_group[0].teaming.policy",
            "port_group[0].teaming.active[1]",
            "port_group[1].teaming",
            "port_group[1].teaming.standby",
            "host.port[0].teaming.active",
        ]
    );
}

#[test]
fn two_files_locate_a_ports_team_in_the_host_file() {
    let profile = "[switch]\nname = \"t\"\n\n[uplink_policy]\nuplinks = [\"uplink1\", \"uplink2\"]\nallowed_vlans = [10]\n\n[[port_group]]\nname = \"web\"\nvlan = 10\nteaming = { active = [\"uplink1\"], standby = [\"uplink2\"] }\n";
    let host = "[host.uplinks]\nuplink1 = \"eth0\"\nuplink2 = \"eth1\"\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"tap1\"\nport_group = \"web\"\nteaming = { active = [\"uplink2\"], standby = [\"uplink3\"] }\n";
    let errs = parse_str(profile, "p.toml", Some((host, "h.toml"))).unwrap_err();
    let e = expect_in(
        errs.errors(),
        "h.toml",
        9,
        "host.port[0].teaming.standby[0]",
        "unknown uplink \"uplink3\"",
    );
    assert_eq!(e.column, Some(46));
    assert_eq!(errs.len(), 1, "{errs}");
    let host = host.replace("\"uplink3\"", "\"uplink1\"");
    let c = parse_str(profile, "p.toml", Some((&host, "h.toml")))
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(
        features(&c, "vm1").teaming,
        Some(team(OriginatingPort, &["uplink2"], &["uplink1"], true))
    );
}

// ---- configurations changed in code, and the data plane's own check --------------

#[test]
fn config_changed_in_code_is_checked_again() {
    let src = web_team("teaming = { policy = \"ip-hash\" }");
    let mut config = parse_str(&src, P, None).unwrap();
    config.profile.port_groups[0].teaming = Some(TeamingOverride {
        active: Some(vec!["zz".into()]),
        ..Default::default()
    });
    config.host.ports[0].teaming = Some(TeamingOverride {
        standby: Some(vec!["uplink1".into(), "uplink2".into()]),
        active: Some(vec![]),
        ..Default::default()
    });
    let errs = config.compile().unwrap_err();
    let errs = errs.errors();
    // Keys the file does not have are located at their nearest ancestor.
    expect_in(
        errs,
        P,
        line_of(&src, "teaming ="),
        "port_group[0].teaming.active[0]",
        "unknown uplink \"zz\"",
    );
    expect_in(
        errs,
        P,
        line_of(&src, "[[host.port]]"),
        "host.port[0].teaming.active",
        "the active list is empty",
    );
    // Without uplinks.
    let mut config = parse_str(&src, P, None).unwrap();
    config.profile.uplink_policy = None;
    config.host.uplinks.clear();
    let errs = config.compile().unwrap_err();
    expect_in(
        errs.errors(),
        P,
        line_of(&src, "teaming ="),
        "port_group[0].teaming",
        "no [uplink_policy]",
    );
}

#[test]
fn spec_check_team_errors_are_located() {
    let src = with_uplinks(2).replacen("vlan = 20\n", "vlan = 20\nteaming = {}\n", 1)
        + r#"teaming = { policy = "ip-hash" }

[[host.port]]
name = "vm2"
interface = "tap2"
port_group = "db"

[[host.port]]
name = "vm3"
interface = "tap3"
port_group = "web"
"#;
    let config = parse_str(&src, P, None).unwrap();
    let mut c = config.compile().unwrap();
    // The data plane refuses what the checks above refuse.
    c.spec.ports[2].features.teaming.as_mut().unwrap().active = vec![];
    let e = c.spec.check().unwrap_err();
    assert!(matches!(e, SpecError::BadTeam { .. }), "{e:?}");
    let located = |e: &SpecError| {
        let err = spec_error::spec_error(e, &c, &config.profile, &config.host, &config.sources);
        (err.key.clone(), err.line, err.message)
    };
    let (key, line, message) = located(&e);
    assert_eq!(key, "host.port[0].teaming");
    assert_eq!(line, Some(line_of(&src, "teaming = { policy")));
    assert_eq!(message, "port \"vm1\": teaming: the active list is empty");
    let bad = |port: &str| SpecError::BadTeam {
        port: port.into(),
        reason: "x".into(),
    };
    // vm2 inherits its group's team; vm3 has none (a spec changed in code).
    let (key, line, _) = located(&bad("vm2"));
    assert_eq!(key, "port_group[1].teaming");
    assert_eq!(line, Some(line_of(&src, "teaming = {}")));
    let (key, line, _) = located(&bad("vm3"));
    assert_eq!(key, "host.port[2]");
    assert_eq!(line, Some(last_line_where(&src, |l| l == "[[host.port]]")));
}

// ---- robustness ----------------------------------------------------------------

fn uplink_list() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            20 => proptest::sample::select(&["\"uplink1\"", "\"uplink2\""][..]),
            3 => Just("\"uplink3\""),
            1 => Just("\"eth0\""),
        ],
        0..3,
    )
    .prop_map(|v| format!("[{}]", v.join(", ")))
}

fn teaming_table() -> impl Strategy<Value = String> {
    (
        opt_kv(
            "policy",
            prop_oneof![
                20 => proptest::sample::select(
                    &["\"originating-port\"", "\"source-mac-hash\"", "\"ip-hash\"", "\"explicit-failover\""][..]
                )
                .prop_map(str::to_owned),
                1 => Just("\"lacp\"".to_owned()),
            ],
        ),
        opt_kv("active", uplink_list()),
        opt_kv("standby", uplink_list()),
        opt_kv("failback", any::<bool>().prop_map(|b| b.to_string())),
    )
        .prop_map(|(a, b, c, d)| format!("teaming = {{ {a}{b}{c}{d}}}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any mix of teams on two groups and three ports, over one to three uplinks and
    /// VLANs the uplinks may or may not carry: either it loads, and the data plane
    /// accepts its spec, with no team on an uplink, or every error is located.
    #[test]
    fn teaming_settings_load_or_are_located(
        uplinks in prop_oneof![1 => Just(0usize), 2 => Just(1), 6 => Just(2), 3 => Just(3)],
        web in proptest::option::of(teaming_table()),
        db in proptest::option::of(teaming_table()),
        ports in proptest::collection::vec(proptest::option::of(teaming_table()), 3),
        db_vlan in prop_oneof![4 => Just(20u16), 1 => Just(30u16)],
        native in any::<bool>(),
    ) {
        let mut src = match uplinks {
            0 => BASE
                .replace("[uplink_policy]\nuplinks = [\"uplink1\"]\nallowed_vlans = [10, 20]\n", "")
                .replace("[host.uplinks]\nuplink1 = \"eth0\"\n", ""),
            n => with_uplinks(n),
        };
        if native {
            src = src.replace("allowed_vlans = [10, 20]", "allowed_vlans = [10]\nnative_vlan = 20");
        }
        let line = |t: &Option<String>| t.as_ref().map_or(String::new(), |t| format!("{t}\n"));
        src = src
            .replacen("vlan = 10\n", &format!("vlan = 10\n{}", line(&web)), 1)
            .replacen("vlan = 20\n", &format!("vlan = {db_vlan}\n{}", line(&db)), 1);
        src.push_str(&line(&ports[0]));
        for (i, (t, group)) in ports[1..].iter().zip(["db", "web"]).enumerate() {
            src.push_str(&format!(
                "\n[[host.port]]\nname = \"vm{}\"\ninterface = \"tap{}\"\nport_group = \"{group}\"\n{}",
                i + 2,
                i + 2,
                line(t)
            ));
        }
        match parse_str(&src, P, None) {
            Ok(config) => {
                let c = config.compile().expect("a loaded config compiles");
                c.spec.check().expect("a loaded config passes SwitchSpec::check");
                check_new_invariants(&c.spec);
                for p in &c.spec.ports {
                    if let Some(t) = &p.features.teaming {
                        prop_assert!(!t.active.is_empty(), "{src}");
                    }
                }
            }
            Err(errs) => {
                for e in errs.iter() {
                    prop_assert!(e.line.is_some(), "{e}\n{src}");
                    prop_assert!(!e.key.is_empty(), "{e}");
                }
            }
        }
    }
}

/// The error example of docs/config.md §6 is real output.
#[test]
fn docs_teaming_error_example_is_real() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    let section = &docs[docs.find("### Errors of teaming").unwrap()..];
    let toml_start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = section[toml_start..].find("```").unwrap();
    let src = &section[toml_start..toml_start + toml_len];
    let shown = parse_str(src, "prod.toml", None).unwrap_err().to_string();
    println!("{shown}");
    assert!(
        section.contains(&format!("```text\n{shown}\n```")),
        "docs/config.md §6 must show:\n{shown}"
    );
}
