//! Compliance: drift of a running configuration from a golden profile, and
//! hardening templates (rules over the flat view of [`crate::diff`]).
//!
//! Invariant: both checks are pure functions of their inputs (no clock, no host
//! state), findings are sorted by key, and a report is `compliant` exactly when it
//! has no findings. Templates are data (TOML, `templates/*.toml`); parsing one
//! refuses unknown keys and names the origin, line and key of every error, and
//! never panics on any input.

use crate::config::{HostBinding, Profile};
use crate::diff::{
    Flat, OFF, flatten_port, flatten_profile, key_segment, split_key, unquote_segment,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

/// One way in which a configuration is not what it should be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The flat key (or, for a template rule whose pattern matched nothing, the
    /// pattern) the finding is about.
    pub key: String,
    pub kind: FindingKind,
    /// What the golden profile or the template wants; `None` when it wants the key
    /// absent.
    pub expected: Option<String>,
    /// What the configuration has; `None` when it lacks the key.
    pub actual: Option<String>,
    /// What to change, in words.
    pub fix: String,
    /// The template rule's id, for findings of a template.
    pub rule: Option<String>,
    /// The guest ports a port-group finding reaches (those that do not override
    /// the setting), when the running host binding was given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// Whether the configuration lacks, adds or changes what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Expected but absent.
    Missing,
    /// Present but not expected.
    Extra,
    /// Present with another value.
    Changed,
}

impl FindingKind {
    /// `missing`, `extra` or `changed`.
    pub fn word(self) -> &'static str {
        match self {
            FindingKind::Missing => "missing",
            FindingKind::Extra => "extra",
            FindingKind::Changed => "changed",
        }
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComplianceReport {
    /// What the configuration was checked against (`golden profile`,
    /// `template baseline`); the caller may replace it with a file name.
    pub against: String,
    /// No findings.
    pub compliant: bool,
    /// Sorted by key.
    pub findings: Vec<Finding>,
    /// What runs besides the configuration and is not checked against it (the
    /// runtime ports: host state, with their group's settings), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_state: Vec<String>,
}

impl ComplianceReport {
    fn new(against: String, mut findings: Vec<Finding>) -> ComplianceReport {
        findings.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.rule.cmp(&b.rule)));
        ComplianceReport {
            against,
            compliant: findings.is_empty(),
            findings,
            host_state: Vec::new(),
        }
    }

    /// A readable report: one section per switch part (switch, uplink policy, each
    /// port group, each port, each ACL, host, management), each finding with its
    /// expected and actual values, the ports it reaches and its fix.
    pub fn render(&self) -> String {
        let mut out = self.render_findings();
        if !self.host_state.is_empty() {
            let _ = writeln!(
                out,
                "\nnot checked — runtime ports (host state, with their group's settings):"
            );
            for line in &self.host_state {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    fn render_findings(&self) -> String {
        let mut out = String::new();
        if self.compliant {
            let _ = writeln!(out, "compliant with {}: no findings", self.against);
            return out;
        }
        let n = self.findings.len();
        let _ = writeln!(
            out,
            "not compliant with {}: {n} finding{}",
            self.against,
            if n == 1 { "" } else { "s" }
        );
        let mut sections: BTreeMap<(u8, String), Vec<&Finding>> = BTreeMap::new();
        for f in &self.findings {
            sections.entry(section(&f.key)).or_default().push(f);
        }
        for ((_, title), findings) in sections {
            let _ = writeln!(out, "\n{title}");
            for f in findings {
                let rule = f
                    .rule
                    .as_ref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                let what = match (&f.expected, &f.actual) {
                    (Some(e), Some(a)) => format!("expected {e}, found {a}"),
                    (Some(e), None) => format!("expected {e}, not set"),
                    (None, Some(a)) => format!("found {a}, not expected"),
                    (None, None) => String::new(),
                };
                let _ = writeln!(out, "  {:<7} {}: {what}{rule}", f.kind.word(), f.key);
                if !f.ports.is_empty() {
                    let _ = writeln!(out, "          ports: {}", f.ports.join(", "));
                }
                let _ = writeln!(out, "          fix: {}", f.fix);
            }
        }
        out
    }
}

/// The section a key is reported under, with its rank (switch first, then the
/// uplink policy, port groups, ports, ACLs, the overlay, host, anything else).
fn section(key: &str) -> (u8, String) {
    let segs = split_key(key);
    let named = |what: &str| {
        segs.get(1)
            .map(|s| {
                format!(
                    "{what} {}",
                    unquote_segment(s.split('[').next().unwrap_or(s))
                )
            })
            .unwrap_or_else(|| what.to_owned())
    };
    match segs[0] {
        "switch" => (0, "switch".into()),
        "uplink_policy" => (1, "uplink policy".into()),
        "port_group" => (2, named("port group")),
        "port" => (3, named("port")),
        "mac_acl" => (4, named("MAC ACL")),
        "arp_acl" => (5, named("ARP ACL")),
        "overlay" => (6, "overlay".into()),
        "host" => (7, "host binding".into()),
        other => (8, other.split('[').next().unwrap_or(other).to_owned()),
    }
}

// ---- golden profile -----------------------------------------------------------

/// `portcullis check --profile`: the golden profile's text (`golden_src`, read from
/// `golden_name`) against the running configuration (its profile and host binding,
/// as `GET /v1/config` gives them). A golden profile is host-independent: its
/// uplinks and ports are given their NICs by the running host binding, unless the
/// file carries a `[host]` table of its own (a whole configuration), which is then
/// used as written. Errors: a file that does not load, or a running configuration
/// that does not parse.
pub fn check_golden(
    golden_src: &str,
    golden_name: &str,
    running_profile: (&str, &str),
    running_host: (&str, &str),
) -> Result<ComplianceReport, String> {
    let table = golden_src.parse::<toml::Table>().ok();
    let has_host = table.as_ref().is_some_and(|t| t.contains_key("host"));
    let has_overlay = table.as_ref().is_some_and(|t| t.contains_key("overlay"));
    // The overlay's endpoint is host data: the golden profile is compiled with the
    // running binding's, fitted to whether the golden profile has an overlay, so
    // that an overlay on one side only is drift, not an error.
    let fitted = (!has_host).then(|| host_for_golden(running_host.0, has_overlay));
    let golden = crate::config::parse_str(
        golden_src,
        golden_name,
        fitted.as_deref().map(|h| (h, running_host.1)),
    )
    .map_err(|e| e.to_string())?;
    let running =
        crate::config::parse_str(running_profile.0, running_profile.1, Some(running_host))
            .map_err(|e| format!("the running configuration does not parse: {e}"))?;
    Ok(check_profile(
        &golden.profile,
        &running.profile,
        Some(&running.host),
    ))
}

/// The running host binding `host` (a `[host]` file) with its `[host.overlay]`
/// replaced by a stand-in endpoint when the golden profile has an `[overlay]`
/// (its peers name VLANs of the running map, not necessarily the golden one's),
/// and removed when it has none.
fn host_for_golden(host: &str, overlay: bool) -> String {
    let Ok(mut doc) = host.parse::<toml_edit::DocumentMut>() else {
        return host.to_owned();
    };
    let Some(table) = doc
        .entry("host")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
    else {
        return host.to_owned();
    };
    table.remove("overlay");
    if overlay {
        let mut stand_in = toml_edit::Table::new();
        stand_in.insert(
            "local_ip",
            toml_edit::value(crate::config::STAND_IN_LOCAL_IP),
        );
        table.insert("overlay", toml_edit::Item::Table(stand_in));
    }
    doc.to_string()
}

/// Golden profile vs running: missing and extra port groups and ACLs (one finding
/// per group or ACL, not per field), changed fields, and per port (from
/// `running_host`, when given) which of its effective settings differ from what the
/// golden profile would give it. A port-group finding lists the ports it reaches;
/// a port whose group the golden profile lacks is reported as such. Which group a
/// port belongs to is host data: moving a port between golden groups is not drift.
pub fn check_profile(
    golden: &Profile,
    running: &Profile,
    running_host: Option<&HostBinding>,
) -> ComplianceReport {
    let g = flatten_profile(golden);
    let r = flatten_profile(running);
    let mut findings = Vec::new();

    // Named tables present on one side only: one finding each, and their keys are
    // not compared field by field.
    let mut skip: Vec<String> = Vec::new();
    let named = |p: &Profile| -> Vec<(&'static str, &'static str, String)> {
        let groups = p
            .port_groups
            .iter()
            .map(|x| ("port_group", "[[port_group]]", x.name.clone()));
        let macs = p
            .mac_acls
            .iter()
            .map(|x| ("mac_acl", "[[mac_acl]]", x.name.clone()));
        let arps = p
            .arp_acls
            .iter()
            .map(|x| ("arp_acl", "[[arp_acl]]", x.name.clone()));
        groups.chain(macs).chain(arps).collect()
    };
    let golden_named = named(golden);
    let running_named = named(running);
    for (kind, table, name) in &golden_named {
        if !running_named.iter().any(|(k, _, n)| k == kind && n == name) {
            let key = format!("{kind}.{}", key_segment(name));
            findings.push(Finding {
                key: key.clone(),
                kind: FindingKind::Missing,
                expected: Some("defined".into()),
                actual: None,
                fix: format!("add the {table} named {name:?} of the golden profile"),
                rule: None,
                ports: Vec::new(),
            });
            skip.push(key);
        }
    }
    for (kind, table, name) in &running_named {
        if !golden_named.iter().any(|(k, _, n)| k == kind && n == name) {
            let key = format!("{kind}.{}", key_segment(name));
            findings.push(Finding {
                key: key.clone(),
                kind: FindingKind::Extra,
                expected: None,
                actual: Some("defined".into()),
                fix: format!("remove the {table} named {name:?}, or add it to the golden profile"),
                rule: None,
                ports: Vec::new(),
            });
            skip.push(key);
        }
    }
    let keep = |k: &String| !skip.iter().any(|s| is_within(k, s));
    let g: Flat = g.into_iter().filter(|(k, _)| keep(k)).collect();
    let r: Flat = r.into_iter().filter(|(k, _)| keep(k)).collect();
    findings.extend(compare(&g, &r));

    if let Some(host) = running_host {
        let port_findings = check_ports(golden, running, host, &mut findings);
        findings.extend(port_findings);
    }
    ComplianceReport::new("golden profile".into(), findings)
}

/// Per-port findings: a port in a group the golden profile lacks, and effective
/// settings that differ from the golden ones for a reason other than a finding on
/// its group. A port that a group finding reaches (its setting differs the same
/// way: it does not override it) is listed in that finding's `ports` instead.
fn check_ports(
    golden: &Profile,
    running: &Profile,
    host: &HostBinding,
    group_findings: &mut [Finding],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for port in &host.ports {
        let prefix = format!("port.{}", key_segment(&port.name));
        if !golden.port_groups.iter().any(|g| g.name == port.port_group) {
            out.push(Finding {
                key: format!("{prefix}.port_group"),
                kind: FindingKind::Extra,
                expected: None,
                actual: Some(port.port_group.clone()),
                fix: format!(
                    "port group {:?} is not in the golden profile: move port {:?} to a golden port group, or add the group to the golden profile",
                    port.port_group, port.name
                ),
                rule: None,
                ports: Vec::new(),
            });
            continue;
        }
        let group_prefix = format!("port_group.{}", key_segment(&port.port_group));
        let mut gp = Flat::new();
        flatten_port(&mut gp, golden, port);
        let mut rp = Flat::new();
        flatten_port(&mut rp, running, port);
        for f in compare(&gp, &rp) {
            let suffix = f.key.get(prefix.len()..).unwrap_or_default();
            let mut explained = false;
            for g in group_findings.iter_mut() {
                let Some(gs) = group_suffix(&g.key, &group_prefix) else {
                    continue;
                };
                if related(gs, suffix) {
                    explained = true;
                    if !g.ports.contains(&port.name) {
                        g.ports.push(port.name.clone());
                    }
                }
            }
            if !explained {
                out.push(f);
            }
        }
    }
    out
}

/// The part of finding key `key` after `group_prefix` (`port_group.web`), when the
/// key is about that group: `.security.promiscuous`, or `` for the group itself.
fn group_suffix<'k>(key: &'k str, group_prefix: &str) -> Option<&'k str> {
    is_within(key, group_prefix).then(|| &key[group_prefix.len()..])
}

/// Whether two key suffixes (`.security.promiscuous`, `.port_security`) are the
/// same setting or one contains the other.
fn related(a: &str, b: &str) -> bool {
    is_within(a, b) || is_within(b, a)
}

/// Whether `key` is `prefix` or a key below it (`prefix.…`, `prefix[…]`).
fn is_within(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

/// Findings for the differences of `golden` → `running`. A feature that is off on
/// one side and on (several keys) on the other is one finding on the feature's key.
fn compare(golden: &Flat, running: &Flat) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut collapsed: BTreeSet<String> = BTreeSet::new();
    for c in crate::diff::diff(golden, running) {
        match (&c.before, &c.after) {
            (Some(e), Some(a)) => out.push(changed(&c.key, e.clone(), a.clone())),
            // `key = off` on one side, `key.…` on the other: one finding on `key`.
            (Some(e), None) if has_below(running, &c.key) => {
                if collapsed.insert(c.key.clone()) {
                    out.push(changed(&c.key, e.clone(), summary(running, &c.key)));
                }
            }
            (None, Some(a)) if has_below(golden, &c.key) => {
                if collapsed.insert(c.key.clone()) {
                    out.push(changed(&c.key, summary(golden, &c.key), a.clone()));
                }
            }
            (Some(e), None) => match ancestor_in(&c.key, running) {
                Some(anc) => {
                    if collapsed.insert(anc.clone()) {
                        let expected = summary(golden, &anc);
                        let actual = running[&anc].clone();
                        out.push(changed(&anc, expected, actual));
                    }
                }
                None => out.push(Finding {
                    key: c.key.clone(),
                    kind: FindingKind::Missing,
                    expected: Some(e.clone()),
                    actual: None,
                    fix: format!("set {} = {e}, as in the golden profile", c.key),
                    rule: None,
                    ports: Vec::new(),
                }),
            },
            (None, Some(a)) => match ancestor_in(&c.key, golden) {
                Some(anc) => {
                    if collapsed.insert(anc.clone()) {
                        let expected = golden[&anc].clone();
                        let actual = summary(running, &anc);
                        out.push(changed(&anc, expected, actual));
                    }
                }
                None => out.push(Finding {
                    key: c.key.clone(),
                    kind: FindingKind::Extra,
                    expected: None,
                    actual: Some(a.clone()),
                    fix: format!("remove {} (the golden profile does not have it)", c.key),
                    rule: None,
                    ports: Vec::new(),
                }),
            },
            (None, None) => {}
        }
    }
    out
}

fn changed(key: &str, expected: String, actual: String) -> Finding {
    let fix = if expected == OFF {
        format!("turn {key} off, as in the golden profile")
    } else if actual == OFF {
        format!("turn {key} on with {expected}, as in the golden profile")
    } else {
        format!("set {key} = {expected}, as in the golden profile")
    };
    Finding {
        key: key.to_owned(),
        kind: FindingKind::Changed,
        expected: Some(expected),
        actual: Some(actual),
        fix,
        rule: None,
        ports: Vec::new(),
    }
}

/// Whether `flat` has keys below `prefix` (`prefix.…`).
fn has_below(flat: &Flat, prefix: &str) -> bool {
    let start = format!("{prefix}.");
    flat.range(start.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&start))
}

/// The nearest proper ancestor of `key` that is itself a key of `flat`.
fn ancestor_in(key: &str, flat: &Flat) -> Option<String> {
    let segs = split_key(key);
    (1..segs.len())
        .rev()
        .map(|n| segs[..n].join("."))
        .find(|a| flat.contains_key(a))
}

/// The keys below `prefix` as an inline table: `{ max_macs = 1, violation = shutdown }`.
fn summary(flat: &Flat, prefix: &str) -> String {
    let start = format!("{prefix}.");
    let parts: Vec<String> = flat
        .range(start.clone()..)
        .take_while(|(k, _)| k.starts_with(&start))
        .map(|(k, v)| format!("{} = {v}", &k[start.len()..]))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

// ---- templates -------------------------------------------------------------------

/// A hardening template: data, loaded from TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub description: String,
    /// The included templates' rules first, then the template's own.
    pub rules: Vec<TemplateRule>,
}

/// One rule: every key matching one of `keys` must satisfy `expect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRule {
    pub id: String,
    /// Key patterns; `*` stands for one key segment
    /// (`port_group.*.security.promiscuous`).
    pub keys: Vec<String>,
    pub expect: Expect,
    /// Why the rule exists, with its source.
    pub why: String,
    /// What to change; `{key}`, `{name}` (the segment the first `*` matched) and
    /// `{actual}` are replaced.
    pub fix: String,
}

/// What a rule wants of the keys it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `expect = "reject"`.
    Equals(String),
    /// `expect_not = "off"`.
    NotEquals(String),
    /// `expect_present = true`: at least one key matches each pattern.
    Present,
}

const BASELINE: &str = include_str!("../../../templates/baseline.toml");
const STRICT: &str = include_str!("../../../templates/strict.toml");
const BUILTINS: &[(&str, &str)] = &[("baseline", BASELINE), ("strict", STRICT)];
/// Includes nested deeper than this are refused (a cycle, most likely).
const MAX_INCLUDE_DEPTH: usize = 8;
const PLACEHOLDERS: &[&str] = &["key", "name", "actual"];

impl Template {
    /// Parses a template. `origin` names it in errors; `include`s resolve to the
    /// built-in templates. Errors name the origin, the line and the key, one per
    /// line.
    pub fn parse(text: &str, origin: &str) -> Result<Template, String> {
        parse_template(text, origin, None, &mut Vec::new())
    }

    /// Reads and parses the template file at `path`; an `include = ["x"]` resolves
    /// to `x.toml` in the same directory, else to the built-in template `x`.
    pub fn load(path: &Path) -> Result<Template, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the template: {e}", path.display()))?;
        parse_template(
            &text,
            &path.display().to_string(),
            path.parent(),
            &mut Vec::new(),
        )
    }

    /// The built-in template `name` (see [`Template::builtin_names`]).
    pub fn builtin(name: &str) -> Option<Template> {
        let (_, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        Template::parse(text, &format!("builtin template {name}")).ok()
    }

    /// `baseline`, `strict`.
    pub fn builtin_names() -> &'static [&'static str] {
        &["baseline", "strict"]
    }

    /// The CLI's `--template NAME|FILE`: a built-in name, else a file.
    pub fn named_or_file(arg: &str) -> Result<Template, String> {
        match Template::builtin(arg) {
            Some(t) => Ok(t),
            None if Template::builtin_names().contains(&arg) => {
                Err(format!("the built-in template {arg} does not parse"))
            }
            None => Template::load(Path::new(arg)),
        }
    }
}

/// Parses one template; `dir` is where included files are looked for, `stack` the
/// names being included (for cycles).
fn parse_template(
    text: &str,
    origin: &str,
    dir: Option<&Path>,
    stack: &mut Vec<String>,
) -> Result<Template, String> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        located(
            origin,
            line,
            "",
            &format!("TOML syntax error: {}", one_line(e.message())),
        )
    })?;
    let mut p = TemplateParser {
        origin,
        text,
        errors: Vec::new(),
    };
    let root = doc.as_table();
    let mut name = None;
    let mut description = None;
    let mut includes: Vec<(String, Option<Range<usize>>, String)> = Vec::new();
    let mut own_rules = Vec::new();
    for (k, item) in root.iter() {
        let key_span = root.key(k).and_then(|k| k.span());
        match k {
            "name" => name = p.string(k, item, key_span.clone()),
            "description" => description = p.string(k, item, key_span.clone()),
            "include" => {
                let Some(arr) = item.as_array() else {
                    p.error(
                        key_span,
                        k,
                        "expected an array of template names, e.g. [\"baseline\"]",
                    );
                    continue;
                };
                for (i, v) in arr.iter().enumerate() {
                    let key = format!("include[{i}]");
                    match v.as_str() {
                        Some(s) if !s.is_empty() => includes.push((s.to_owned(), v.span(), key)),
                        _ => p.error(
                            v.span(),
                            &key,
                            "expected a template name (a non-empty string)",
                        ),
                    }
                }
            }
            "rule" => {
                let tables: Vec<(&dyn toml_edit::TableLike, Option<Range<usize>>)> = match item {
                    toml_edit::Item::ArrayOfTables(a) => a
                        .iter()
                        .map(|t| (t as &dyn toml_edit::TableLike, t.span()))
                        .collect(),
                    toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
                        let mut out = Vec::new();
                        for (i, v) in a.iter().enumerate() {
                            match v.as_inline_table() {
                                Some(t) => out.push((t as &dyn toml_edit::TableLike, v.span())),
                                None => {
                                    p.error(v.span(), &format!("rule[{i}]"), "expected a table")
                                }
                            }
                        }
                        out
                    }
                    _ => {
                        p.error(key_span, k, "expected [[rule]] tables");
                        continue;
                    }
                };
                for (i, (t, span)) in tables.into_iter().enumerate() {
                    if let Some(r) = p.rule(i, t, span) {
                        own_rules.push((r, i));
                    }
                }
            }
            _ => p.error(
                key_span,
                k,
                "unknown key; a template has name, description, include and [[rule]]",
            ),
        }
    }
    if name.is_none() && !root.contains_key("name") {
        p.error(None, "name", "missing: every template has a name");
    }
    if description.is_none() && !root.contains_key("description") {
        p.error(
            None,
            "description",
            "missing: every template has a description",
        );
    }

    // Includes: their rules come first.
    let mut rules: Vec<TemplateRule> = Vec::new();
    let mut rule_from: BTreeMap<String, String> = BTreeMap::new();
    for (inc, span, key) in &includes {
        if stack.contains(inc) || stack.len() >= MAX_INCLUDE_DEPTH {
            let chain = stack.join(" → ");
            p.error(
                span.clone(),
                key,
                &format!("include cycle: {chain} → {inc}"),
            );
            continue;
        }
        let file = dir.and_then(|d| included_file(d, inc));
        let parsed = match (&file, BUILTINS.iter().find(|(n, _)| n == inc)) {
            (Some(path), _) => {
                stack.push(inc.clone());
                let r = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: cannot read the template: {e}", path.display()))
                    .and_then(|text| {
                        parse_template(&text, &path.display().to_string(), dir, stack)
                    });
                stack.pop();
                r
            }
            (None, Some((n, text))) => {
                stack.push(inc.clone());
                let r = parse_template(text, &format!("builtin template {n}"), None, stack);
                stack.pop();
                r
            }
            (None, None) => {
                let beside = if dir.is_some() {
                    format!(" and no {inc}.toml beside this file")
                } else {
                    String::new()
                };
                p.error(
                    span.clone(),
                    key,
                    &format!(
                        "unknown template {inc:?}: not a built-in template ({}){beside}",
                        Template::builtin_names().join(", ")
                    ),
                );
                continue;
            }
        };
        match parsed {
            Ok(t) => {
                for r in t.rules {
                    if rule_from.contains_key(&r.id) {
                        continue; // included twice (e.g. through two includes): keep one
                    }
                    rule_from.insert(r.id.clone(), inc.clone());
                    rules.push(r);
                }
            }
            Err(e) => p.error(
                span.clone(),
                key,
                &format!("in included template {inc:?}:\n{e}"),
            ),
        }
    }
    for (r, i) in own_rules {
        if let Some(from) = rule_from.get(&r.id) {
            let what = if from.is_empty() {
                "an earlier rule of this template".to_owned()
            } else {
                format!("the included template {from:?}")
            };
            let span = p.rule_span(root, i);
            p.error(
                span,
                &format!("rule[{i}].id"),
                &format!("rule id {:?} is already used by {what}", r.id),
            );
            continue;
        }
        rule_from.insert(r.id.clone(), String::new());
        rules.push(r);
    }
    if !p.errors.is_empty() {
        return Err(p.errors.join("\n"));
    }
    Ok(Template {
        name: name.unwrap_or_default(),
        description: description.unwrap_or_default(),
        rules,
    })
}

/// `dir/<name>.toml` (or `dir/<name>` when it already ends in `.toml`), if it is a
/// file and `name` is a plain file name.
fn included_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    let plain = !name.starts_with('.') && !name.contains(['/', '\\']) && !name.contains('\0');
    if !plain {
        return None;
    }
    let file = if name.ends_with(".toml") {
        name.to_owned()
    } else {
        format!("{name}.toml")
    };
    let path = dir.join(file);
    path.is_file().then_some(path)
}

struct TemplateParser<'a> {
    origin: &'a str,
    text: &'a str,
    errors: Vec<String>,
}

impl TemplateParser<'_> {
    fn error(&mut self, span: Option<Range<usize>>, key: &str, message: &str) {
        let line = span.map(|s| line_of(self.text, s.start));
        self.errors.push(located(self.origin, line, key, message));
    }

    fn string(
        &mut self,
        key: &str,
        item: &toml_edit::Item,
        key_span: Option<Range<usize>>,
    ) -> Option<String> {
        match item.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.to_owned()),
            Some(_) => {
                self.error(key_span, key, "must not be empty");
                None
            }
            None => {
                self.error(key_span, key, "expected a string");
                None
            }
        }
    }

    fn rule_span(&self, root: &toml_edit::Table, i: usize) -> Option<Range<usize>> {
        match root.get("rule")? {
            toml_edit::Item::ArrayOfTables(a) => a.get(i)?.span(),
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => a.get(i)?.span(),
            _ => None,
        }
    }

    fn rule(
        &mut self,
        i: usize,
        t: &dyn toml_edit::TableLike,
        span: Option<Range<usize>>,
    ) -> Option<TemplateRule> {
        let before = self.errors.len();
        let mut id = None;
        let mut keys = None;
        let mut expects: Vec<(&str, Expect)> = Vec::new();
        let mut why = None;
        let mut fix = None;
        for (k, item) in t.iter() {
            let key = format!("rule[{i}].{k}");
            let ks = t.key(k).and_then(|k| k.span()).or_else(|| span.clone());
            match k {
                "id" => {
                    id = self.string(&key, item, ks.clone());
                    if let Some(s) = &id
                        && !s
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    {
                        self.error(ks, &key, "use letters, digits, '-', '_' and '.' only");
                    }
                }
                "keys" => {
                    let Some(arr) = item.as_array() else {
                        self.error(ks, &key, "expected an array of key patterns");
                        continue;
                    };
                    let mut out = Vec::new();
                    for (j, v) in arr.iter().enumerate() {
                        let vkey = format!("{key}[{j}]");
                        match v.as_str() {
                            Some(s) => match check_pattern(s) {
                                Ok(()) => out.push(s.to_owned()),
                                Err(m) => self.error(v.span(), &vkey, &m),
                            },
                            None => self.error(v.span(), &vkey, "expected a key pattern (a string)"),
                        }
                    }
                    if arr.is_empty() {
                        self.error(ks, &key, "list at least one key pattern");
                    }
                    keys = Some(out);
                }
                "expect" => {
                    if let Some(s) = self.value_text(&key, item, ks) {
                        expects.push((k, Expect::Equals(s)));
                    }
                }
                "expect_not" => {
                    if let Some(s) = self.value_text(&key, item, ks) {
                        expects.push((k, Expect::NotEquals(s)));
                    }
                }
                "expect_present" => match item.as_bool() {
                    Some(true) => expects.push((k, Expect::Present)),
                    Some(false) => self.error(
                        ks,
                        &key,
                        "expect_present = false checks nothing; use expect or expect_not, or drop the rule",
                    ),
                    None => self.error(ks, &key, "expected true"),
                },
                "why" => why = self.string(&key, item, ks),
                "fix" => {
                    fix = self.string(&key, item, ks.clone());
                    if let Some(f) = &fix
                        && let Err(m) = check_placeholders(f)
                    {
                        self.error(ks, &key, &m);
                    }
                }
                _ => self.error(
                    ks,
                    &key,
                    "unknown key; a rule has id, keys, expect | expect_not | expect_present, why and fix",
                ),
            }
        }
        let rule_key = format!("rule[{i}]");
        for (field, v) in [
            ("id", id.is_some()),
            ("keys", keys.is_some()),
            ("why", why.is_some()),
            ("fix", fix.is_some()),
        ] {
            if !v && !t.contains_key(field) {
                self.error(span.clone(), &format!("{rule_key}.{field}"), "missing");
            }
        }
        match expects.len() {
            1 => {}
            0 => {
                if !["expect", "expect_not", "expect_present"]
                    .iter()
                    .any(|k| t.contains_key(k))
                {
                    self.error(
                        span.clone(),
                        &rule_key,
                        "missing expectation: state one of expect = \"…\", expect_not = \"…\" or expect_present = true",
                    );
                }
            }
            _ => {
                let names: Vec<&str> = expects.iter().map(|e| e.0).collect();
                self.error(
                    span.clone(),
                    &rule_key,
                    &format!("state one expectation, not {}", names.join(" and ")),
                );
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(TemplateRule {
            id: id?,
            keys: keys?,
            expect: expects.pop()?.1,
            why: why?,
            fix: fix?,
        })
    }

    /// An expected value: a string, or a number or boolean (written as its text).
    fn value_text(
        &mut self,
        key: &str,
        item: &toml_edit::Item,
        span: Option<Range<usize>>,
    ) -> Option<String> {
        if let Some(s) = item.as_str() {
            return Some(s.to_owned());
        }
        if let Some(n) = item.as_integer() {
            return Some(n.to_string());
        }
        if let Some(b) = item.as_bool() {
            return Some(b.to_string());
        }
        self.error(
            span,
            key,
            "expected a value: a string, an integer or a boolean",
        );
        None
    }
}

/// A key pattern: non-empty segments, `*` only as a whole segment.
fn check_pattern(p: &str) -> Result<(), String> {
    if p.trim().is_empty() {
        return Err("empty key pattern".into());
    }
    for s in split_key(p) {
        if s.is_empty() {
            return Err(format!(
                "{p:?}: empty key segment (two dots, or a dot at an end)"
            ));
        }
        if s != "*" && !s.starts_with('"') && s.contains('*') {
            return Err(format!(
                "{p:?}: `*` stands for a whole key segment (write port_group.*.vlan, not port_group.we*.vlan)"
            ));
        }
    }
    Ok(())
}

/// Whether `{…}` text is a placeholder: a lower-case word (`{key}`). Other braces
/// (`{}`, `{ max_macs = 1 }`) are literal text.
fn is_placeholder(inner: &str) -> bool {
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Placeholders are `{key}`, `{name}` and `{actual}` only (a typo such as
/// `{group}` is refused rather than left in the fix text).
fn check_placeholders(fix: &str) -> Result<(), String> {
    let mut rest = fix;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            break;
        };
        let inner = &after[..close];
        if is_placeholder(inner) && !PLACEHOLDERS.contains(&inner) {
            return Err(format!(
                "unknown placeholder {{{inner}}}: use {{key}}, {{name}} or {{actual}}"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn substitute(fix: &str, key: &str, name: &str, actual: &str) -> String {
    let mut out = String::with_capacity(fix.len());
    let mut rest = fix;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let v = match &after[..close] {
                "key" => key,
                "name" => name,
                "actual" => actual,
                _ => return None,
            };
            Some((v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn located(origin: &str, line: Option<usize>, key: &str, message: &str) -> String {
    match (line, key.is_empty()) {
        (Some(l), false) => format!("{origin}:{l}: {key}: {message}"),
        (Some(l), true) => format!("{origin}:{l}: {message}"),
        (None, false) => format!("{origin}: {key}: {message}"),
        (None, true) => format!("{origin}: {message}"),
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', "; ")
}

/// The segment the first `*` of `pattern` matches in `key`, if the key matches.
fn match_pattern(pattern: &[&str], key: &str) -> Option<String> {
    let segs = split_key(key);
    if segs.len() != pattern.len() {
        return None;
    }
    let mut name = None;
    for (p, s) in pattern.iter().zip(&segs) {
        if *p == "*" {
            if name.is_none() {
                name = Some(unquote_segment(s));
            }
        } else if p != s {
            return None;
        }
    }
    Some(name.unwrap_or_default())
}

/// Evaluates a template over a flat view (the caller merges
/// [`crate::diff::flatten_profile`], [`crate::diff::flatten_host`] and any extra
/// facts such as `management.tls`). A pattern that matches no key is a finding of
/// kind Missing only for [`Expect::Present`].
pub fn check_template(t: &Template, flat: &Flat) -> ComplianceReport {
    let mut findings = Vec::new();
    for rule in &t.rules {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for pattern in &rule.keys {
            let segs = split_key(pattern);
            // Keys sharing the pattern's literal start, from the sorted map.
            let literal: Vec<&str> = segs.iter().take_while(|s| **s != "*").copied().collect();
            let start = literal.join(".");
            let mut any = false;
            for (key, value) in flat.range(start.clone()..) {
                if !key.starts_with(&start) {
                    break;
                }
                let Some(name) = match_pattern(&segs, key) else {
                    continue;
                };
                any = true;
                if !seen.insert(key) {
                    continue;
                }
                let (ok, expected) = match &rule.expect {
                    Expect::Equals(v) => (value == v, v.clone()),
                    Expect::NotEquals(v) => (value != v, format!("not {v}")),
                    Expect::Present => (true, "present".to_owned()),
                };
                if !ok {
                    findings.push(Finding {
                        key: key.clone(),
                        kind: FindingKind::Changed,
                        expected: Some(expected),
                        actual: Some(value.clone()),
                        fix: substitute(&rule.fix, key, &name, value),
                        rule: Some(rule.id.clone()),
                        ports: Vec::new(),
                    });
                }
            }
            if !any && rule.expect == Expect::Present {
                findings.push(Finding {
                    key: pattern.clone(),
                    kind: FindingKind::Missing,
                    expected: Some("present".into()),
                    actual: None,
                    fix: substitute(&rule.fix, pattern, "", "missing"),
                    rule: Some(rule.id.clone()),
                    ports: Vec::new(),
                });
            }
        }
    }
    ComplianceReport::new(format!("template {}", t.name), findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let p = split_key("port_group.*.security.promiscuous");
        assert_eq!(
            match_pattern(&p, "port_group.web.security.promiscuous").as_deref(),
            Some("web")
        );
        assert_eq!(
            match_pattern(&p, r#"port_group."a.b".security.promiscuous"#).as_deref(),
            Some("a.b")
        );
        assert_eq!(match_pattern(&p, "port_group.web.security"), None);
        assert_eq!(match_pattern(&p, "port.web.security.promiscuous"), None);
        assert!(check_pattern("port_group.we*.vlan").is_err());
        assert!(check_pattern("port_group..vlan").is_err());
        assert!(check_pattern("management.tls").is_ok());
    }

    #[test]
    fn fixes_substitute_placeholders_once() {
        assert_eq!(
            substitute("set {key} on {name} (now {actual})", "k", "web", "{name}"),
            "set k on web (now {name})"
        );
        assert_eq!(substitute("a {b c", "k", "n", "x"), "a {b c");
        assert!(check_placeholders("{key} {name} {actual}").is_ok());
        assert!(check_placeholders("{group}").is_err());
        assert!(check_placeholders("add dhcp_snooping = {} or { max_macs = 1 } to {name}").is_ok());
        assert!(check_placeholders("{key").is_ok());
    }

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn off_against_on_is_one_finding() {
        let g: Flat = [("g.port_security", "off")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let r: Flat = [
            ("g.port_security.max_macs", "1"),
            ("g.port_security.sticky", "false"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let f = compare(&g, &r);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "g.port_security");
        assert_eq!(f[0].expected.as_deref(), Some("off"));
        assert_eq!(
            f[0].actual.as_deref(),
            Some("{ max_macs = 1, sticky = false }")
        );
        let back = compare(&r, &g);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].actual.as_deref(), Some("off"));
        assert!(back[0].fix.starts_with("turn g.port_security on with {"));
    }
}
