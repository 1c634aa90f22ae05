//! The API's guard, route by route: every route × every role is allowed or refused
//! as documented in docs/api.md (the table below is written out by hand, not derived
//! from the route table it checks); TCP callers need a valid, unexpired bearer
//! token; every refusal is audited; bad input gets the one error shape and changes
//! nothing. Runs on in-memory ports: no root needed.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ApiHarness, ROOT, local_peer};
use portcullis_control::rbac::new_token;
use portcullis_daemon::api::{self, Peer};

const PROFILE: &str = r#"
[switch]
name = "rbac"

[[port_group]]
name = "web"
vlan = 10
"#;

fn host(tokens: &str) -> String {
    format!(
        r#"
[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "mem-vm2"
port_group = "web"

[host.management.roles]
operator = {{ users = ["daemon"] }}
auditor = {{ users = ["bin"] }}
{tokens}
"#
    )
}

fn harness(tag: &str, tokens: &str) -> ApiHarness {
    let text = format!("{PROFILE}{}", host(tokens));
    ApiHarness::start(&format!("api-{tag}"), &text, "rbac.toml")
}

/// Callers: the Unix users of a Debian system.
const OPERATOR: Peer = local_peer(1); // daemon
const AUDITOR: Peer = local_peer(2); // bin
const NOBODY: Peer = local_peer(65534);

fn tcp() -> Peer {
    Peer {
        tcp: Some("198.18.0.7:40000".parse().unwrap()),
        ..Peer::default()
    }
}

fn apply_body(dry_run: bool) -> serde_json::Value {
    serde_json::json!({
        "profile": { "name": "rbac.toml", "text": format!("{PROFILE}{}", host("")) },
        "dry_run": dry_run,
    })
}

/// Every route, with a concrete request and the roles documented to be allowed.
fn routes() -> Vec<(
    Method,
    String,
    Option<serde_json::Value>,
    &'static [&'static str],
)> {
    const ANYONE: &[&str] = &["admin", "operator", "auditor", "none"];
    const ALL: &[&str] = &["admin", "operator", "auditor"];
    const OPS: &[&str] = &["admin", "operator"];
    const AUD: &[&str] = &["admin", "auditor"];
    const ADMIN: &[&str] = &["admin"];
    let mac = serde_json::json!({ "mac": "52:54:00:00:00:01" });
    let binding = serde_json::json!({ "mac": "52:54:00:00:00:01", "ip": "198.18.10.1", "vlan": 10, "port": "vm1" });
    vec![
        (Method::GET, "/v1/whoami".into(), None, ANYONE),
        (Method::GET, "/v1/status".into(), None, ALL),
        (Method::GET, "/v1/ports".into(), None, ALL),
        (Method::GET, "/v1/ports/vm1".into(), None, ALL),
        (
            Method::PUT,
            "/v1/ports/vm1/effective-mac".into(),
            Some(mac),
            OPS,
        ),
        (
            Method::POST,
            "/v1/ports/rt1".into(),
            Some(serde_json::json!({ "interface": "mem-rt1", "group": "web", "may_exist": true })),
            OPS,
        ),
        (
            Method::PATCH,
            "/v1/ports/rt1".into(),
            Some(serde_json::json!({ "owner": { "domain": "web9" } })),
            OPS,
        ),
        (
            Method::DELETE,
            "/v1/ports/rt1?if_exists=true".into(),
            None,
            OPS,
        ),
        (Method::POST, "/v1/ports/vm1/recover".into(), None, OPS),
        (Method::POST, "/v1/ports/vm2/shutdown".into(), None, OPS),
        (Method::POST, "/v1/ports/vm2/enable".into(), None, OPS),
        (
            Method::POST,
            "/v1/ports/vm2/capture".into(),
            Some(serde_json::json!({ "count": 1, "seconds": 1 })),
            OPS,
        ),
        (Method::GET, "/v1/mac".into(), None, ALL),
        (Method::GET, "/v1/counters".into(), None, ALL),
        (Method::POST, "/v1/counters/clear".into(), None, OPS),
        (Method::GET, "/v1/events".into(), None, ALL),
        (Method::GET, "/v1/port-security".into(), None, ALL),
        (Method::GET, "/v1/mac-acls".into(), None, ALL),
        (Method::GET, "/v1/uplinks".into(), None, ALL),
        (Method::GET, "/v1/bindings".into(), None, ALL),
        (Method::GET, "/v1/hosts".into(), None, ALL),
        (Method::GET, "/v1/overlay".into(), None, ALL),
        (Method::POST, "/v1/bindings".into(), Some(binding), OPS),
        (
            Method::DELETE,
            "/v1/bindings/10/198.18.10.1".into(),
            None,
            OPS,
        ),
        (Method::GET, "/v1/config".into(), None, ALL),
        (
            Method::POST,
            "/v1/config/apply".into(),
            Some(apply_body(true)),
            ADMIN,
        ),
        (Method::GET, "/v1/audit".into(), None, AUD),
        (
            Method::POST,
            "/v1/trace".into(),
            Some(serde_json::json!({ "port": "vm1", "hex": "ffffffffffff525400000001080600" })),
            OPS,
        ),
    ]
}

#[test]
fn every_route_times_every_role_is_allowed_or_refused_as_documented() {
    let h = harness("roles", "");
    assert_eq!(
        routes().len(),
        api::ROUTES.len(),
        "the table covers every route"
    );
    let mut refused = 0;
    for (peer, role) in [
        (ROOT, "admin"),
        (OPERATOR, "operator"),
        (AUDITOR, "auditor"),
        (NOBODY, "none"),
    ] {
        let (_, me) = h.call(peer, Method::GET, "/v1/whoami", None, &[]);
        assert_eq!(me["role"].as_str().unwrap_or("none"), role, "{me}");
        for (method, path, body, allowed) in routes() {
            let (status, v) = h.call(peer, method.clone(), &path, body, &[]);
            let ok = allowed.contains(&role);
            if ok {
                assert!(
                    status.is_success() || status == StatusCode::NOT_FOUND,
                    "{role} {method} {path}: {status} {v}"
                );
            } else {
                refused += 1;
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} {method} {path}: {v}");
                assert_eq!(v["error"]["code"], "forbidden", "{v}");
            }
        }
    }
    let records = h.audit();
    let refusals = records
        .iter()
        .filter(|r| r.result.starts_with("refused:"))
        .count();
    assert_eq!(refusals, refused, "every refusal is audited");
    // Writes: an intent record before, an outcome record after, for every role allowed.
    let intents = records.iter().filter(|r| r.result == "pending").count();
    let outcomes = records
        .iter()
        .filter(|r| r.args.get("intent").is_some())
        .count();
    assert_eq!(intents, outcomes, "every intent has its outcome");
    assert_eq!(
        intents,
        2 * 11 + 1,
        "11 operator writes × 2 roles + apply by admin"
    );
    assert_eq!(
        portcullis_control::audit::verify(&h.audit_log()).unwrap(),
        records.len()
    );
}

#[test]
fn tcp_callers_need_a_valid_unexpired_token() {
    let (good, good_hash) = new_token("ci-bot").unwrap();
    let (old, old_hash) = new_token("old-bot").unwrap();
    let tokens = format!(
        "\n[[host.management.token]]\nname = \"ci-bot\"\nrole = \"operator\"\nhash = \"{good_hash}\"\n\n[[host.management.token]]\nname = \"old-bot\"\nrole = \"admin\"\nhash = \"{old_hash}\"\nexpires = 2020-01-01T00:00:00Z\n"
    );
    let h = harness("tokens", &tokens);
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<(Vec<(&str, String)>, StatusCode)> = vec![
        (vec![], StatusCode::UNAUTHORIZED),
        (
            vec![("authorization", "Basic Zm9vOmJhcg==".into())],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", bearer("pcl_ci-bot_0000"))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", bearer("garbage"))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![("authorization", bearer(&old))],
            StatusCode::UNAUTHORIZED,
        ),
        (vec![("authorization", bearer(&good))], StatusCode::OK),
    ];
    for (headers, want) in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, v) = h.call(tcp(), Method::GET, "/v1/status", None, &hs);
        assert_eq!(status, want, "{headers:?}: {v}");
        if want == StatusCode::UNAUTHORIZED {
            assert_eq!(v["error"]["code"], "unauthenticated");
            assert!(!v.to_string().contains(&good[8..]), "never echoes a secret");
        }
    }
    // The operator token may operate but not apply; root on the socket may.
    let auth = [("authorization", bearer(&good))];
    let hs: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, _) = h.call(tcp(), Method::POST, "/v1/counters/clear", None, &hs);
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.call(
        tcp(),
        Method::POST,
        "/v1/config/apply",
        Some(apply_body(true)),
        &hs,
    );
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, me) = h.call(tcp(), Method::GET, "/v1/whoami", None, &hs);
    assert_eq!(me["user"], "token:ci-bot");
    assert_eq!(me["source"], "tcp:198.18.0.7:40000");
    let unauth = h
        .audit()
        .iter()
        .filter(|r| r.result.starts_with("refused:") && r.source == "tcp:198.18.0.7:40000")
        .count();
    assert_eq!(unauth, 6, "5 unauthenticated + 1 forbidden, all audited");
}

#[test]
fn bad_input_gets_the_error_shape_changes_nothing_and_is_audited() {
    let h = harness("badinput", "");
    let before = h.call(ROOT, Method::GET, "/v1/config", None, &[]).1;
    let bindings_before = h.call(ROOT, Method::GET, "/v1/bindings", None, &[]).1;
    let raw = |method: Method, path: &str, ctype: Option<&str>, body: Vec<u8>| {
        let mut r = Request::builder().method(method).uri(path);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        h.raw(ROOT, r.body(Body::from(body)).unwrap())
    };
    let cases = [
        (
            raw(Method::POST, "/v1/bindings", Some("application/json"), b"{\"mac\": ".to_vec()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(Method::POST, "/v1/bindings", Some("text/plain"), b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                Method::POST,
                "/v1/bindings",
                Some("application/json"),
                br#"{"mac":"52:54:00:00:00:01","ip":"198.18.10.1","vlan":10,"port":"vm1","lease":5}"#.to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            raw(
                Method::POST,
                "/v1/config/apply",
                Some("application/json"),
                vec![b' '; 2 << 20],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            raw(Method::PATCH, "/v1/ports", None, vec![]),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            raw(Method::GET, "/v1/../etc/passwd", None, vec![]),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for ((status, v), want, code) in cases {
        assert_eq!(status, want, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // An invalid profile is refused with located errors; the label is never opened.
    let (status, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/config/apply",
        Some(serde_json::json!({
            "profile": { "name": "../../../etc/shadow", "text": "[switch]\nname = 7\n" }
        })),
        &[],
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("../../../etc/shadow:2:"), "{msg}");
    assert!(msg.contains("switch.name"), "{msg}");
    assert_eq!(h.call(ROOT, Method::GET, "/v1/config", None, &[]).1, before);
    assert_eq!(
        h.call(ROOT, Method::GET, "/v1/bindings", None, &[]).1,
        bindings_before
    );
    let records = h.audit();
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.result.starts_with("error:"))
        .map(|r| r.result.clone())
        .collect();
    assert_eq!(
        failed.len(),
        5,
        "the four bad writes and the bad apply: {failed:#?}"
    );
    assert!(failed.iter().any(|r| r.contains("invalid_config")));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("vm1".to_string()),
            Just("10".to_string()),
            Just("198.18.10.1".to_string()),
            "[a-zA-Z0-9%._:-]{0,12}",
        ]
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~]{0,16}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("mac".to_string()),
                        Just("ip".to_string()),
                        Just("vlan".to_string()),
                        Just("port".to_string()),
                        Just("profile".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        /// Random calls on every route (paths with random segments, random JSON
        /// bodies) by a random caller: never a 5xx, always the error shape for a
        /// 4xx, and the running configuration never changes (no valid apply is
        /// generated).
        #[test]
        fn random_calls_never_fail_the_server_or_change_the_config(
            calls in prop::collection::vec((0..api::ROUTES.len(), segment(), segment(), prop::option::of(json()), 0..4usize), 1..12)
        ) {
            let h = HARNESS.with(|h| h.clone());
            let before = h.call(ROOT, Method::GET, "/v1/config", None, &[]).1;
            for (r, a, b, body, who) in calls {
                let route = &api::ROUTES[r];
                let path = route.path.replace("{name}", &a).replace("{vlan}", &a).replace("{ip}", &b);
                if !path.starts_with('/') || path.contains(|c: char| c.is_whitespace()) {
                    continue;
                }
                let Ok(uri) = path.parse::<axum::http::Uri>() else { continue };
                let peer = [ROOT, OPERATOR, AUDITOR, NOBODY][who];
                let (status, v) = h.call(peer, route.method.clone(), &uri.to_string(), body, &[]);
                prop_assert!(!status.is_server_error(), "{} {path}: {status} {v}", route.method);
                if status.is_client_error() {
                    prop_assert!(v["error"]["code"].is_string(), "{v}");
                    prop_assert!(v["error"]["message"].is_string(), "{v}");
                }
            }
            prop_assert_eq!(h.call(ROOT, Method::GET, "/v1/config", None, &[]).1, before);
            prop_assert!(portcullis_control::audit::verify(&h.audit_log()).is_ok());
        }
    }

    thread_local! {
        static HARNESS: std::rc::Rc<ApiHarness> = std::rc::Rc::new(harness("props", ""));
    }
}

#[test]
fn a_live_trace_explains_the_decision_and_changes_nothing() {
    let h = harness("trace", "");
    let before = h.call(ROOT, Method::GET, "/v1/counters", None, &[]).1;
    // vm1 (configured 52:54:00:00:00:01) sends a broadcast from another source MAC.
    let forged = "ffffffffffff 020000000099 0806 0001080006040001";
    let (status, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/trace",
        Some(serde_json::json!({ "port": "vm1", "hex": forged })),
        &[],
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["verdict"], "drop: forged_transmit", "{v}");
    let stages = v["stages"].as_array().unwrap();
    let last = stages.last().unwrap();
    assert_eq!(last["decision"], "drop", "{v}");
    assert_eq!(last["reason"], "forged_transmit", "{v}");
    assert!(
        last["text"].as_str().unwrap().contains("52:54:00:00:00:01"),
        "{v}"
    );
    // The honest frame floods to vm2.
    let honest = "ffffffffffff 525400000001 0806 0001080006040001";
    let (_, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/trace",
        Some(serde_json::json!({ "port": "vm1", "hex": honest })),
        &[],
    );
    assert!(
        v["verdict"].as_str().unwrap().starts_with("forward → vm2"),
        "{v}"
    );
    // The live switch counted nothing: traces run on a copy.
    assert_eq!(
        h.call(ROOT, Method::GET, "/v1/counters", None, &[]).1,
        before
    );
    // Bad frames and ports: the error shape.
    for (body, code) in [
        (
            serde_json::json!({ "port": "vm1", "hex": "abc" }),
            "invalid_frame",
        ),
        (
            serde_json::json!({ "port": "vm1", "hex": "zz" }),
            "invalid_frame",
        ),
        (
            serde_json::json!({ "port": "vm9", "hex": honest }),
            "no_such_port",
        ),
    ] {
        let (status, v) = h.call(ROOT, Method::POST, "/v1/trace", Some(body), &[]);
        assert!(status.is_client_error(), "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    // Auditors may not trace (a trace copies the tables: operators' tool).
    let (status, _) = h.call(
        AUDITOR,
        Method::POST,
        "/v1/trace",
        Some(serde_json::json!({ "port": "vm1", "hex": honest })),
        &[],
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The `Authorization` header of `token`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `[[host.management.token]]` for `name` with `role`, `hash` and an optional
/// `expires` line.
fn token_table(name: &str, role: &str, hash: &str, expires: Option<&str>) -> String {
    let expires = expires.map_or_else(String::new, |e| format!("expires = {e}\n"));
    format!(
        "\n[[host.management.token]]\nname = \"{name}\"\nrole = \"{role}\"\nhash = \"{hash}\"\n{expires}"
    )
}

#[test]
fn every_token_failure_gets_one_answer_and_the_audit_record_says_which() {
    let (good, good_hash) = new_token("ci-bot").unwrap();
    let (old, old_hash) = new_token("old-bot").unwrap();
    let (ghost, _) = new_token("ghost").unwrap(); // well formed, never configured
    let wrong = format!("pcl_ci-bot_{}", "0".repeat(64)); // a known name, a wrong secret
    let tokens = token_table("ci-bot", "operator", &good_hash, None)
        + &token_table("old-bot", "admin", &old_hash, Some("2020-01-01T00:00:00Z"));
    let h = harness("one-answer", &tokens);
    let failures = [
        None,
        Some("Basic Zm9vOmJhcg==".to_string()),
        Some(bearer("garbage")),
        Some(bearer(&ghost)),
        Some(bearer(&wrong)),
        Some(bearer(&old)),
    ];
    let mut answers = Vec::new();
    for auth in &failures {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let (status, v) = h.call(tcp(), Method::GET, "/v1/status", None, &headers);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {v}");
        answers.push(v);
    }
    for (auth, v) in failures.iter().zip(&answers) {
        assert_eq!(
            v, &answers[0],
            "{auth:?} is answered like every other failure"
        );
    }
    assert_eq!(answers[0]["error"]["message"], api::UNAUTHENTICATED);
    // The valid token still works.
    let (status, _) = h.call(
        tcp(),
        Method::GET,
        "/v1/status",
        None,
        &[("authorization", bearer(&good).as_str())],
    );
    assert_eq!(status, StatusCode::OK);
    // The audit log tells the failures apart (for the operator, not the caller).
    let results: Vec<String> = h
        .audit()
        .into_iter()
        .filter(|r| r.result.starts_with("refused:"))
        .map(|r| r.result)
        .collect();
    assert_eq!(results.len(), failures.len(), "{results:#?}");
    for want in [
        "no bearer token",
        "not `Bearer TOKEN`",
        "malformed bearer token",
        "unknown token \"ghost\"",
        "token \"ci-bot\" does not match",
        "token \"old-bot\" has expired",
    ] {
        assert!(
            results.iter().any(|r| r.contains(want)),
            "{want}: {results:#?}"
        );
    }
}

#[test]
fn refusals_over_tcp_are_recorded_as_bounded_summaries_at_a_bounded_rate() {
    use portcullis_daemon::api::refusals::{PEER_BURST, PEER_REFILL};
    use sha2::Digest;
    let h = harness("refusal-flood", "");
    // A body of ~1 MiB of short strings (no single long string to digest).
    let pad: Vec<&str> = vec!["abcdefgh"; 90_000];
    let body = serde_json::json!({ "profile": { "name": "p", "text": "x" }, "pad": pad });
    let bytes = body.to_string();
    assert!(bytes.len() > 900_000 && bytes.len() < api::MAX_BODY_BYTES);
    let sha: String = sha2::Sha256::digest(bytes.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let log_len = || std::fs::metadata(h.audit_log()).unwrap().len();
    let before = log_len();
    let burst = PEER_BURST as usize;
    // The limiter refills one record per PEER_REFILL: on a loaded machine the
    // calls below may take longer than that, and each interval past may admit one
    // more record. That many — and no more — are allowed.
    let t0 = std::time::Instant::now();
    let earned = || (t0.elapsed().as_secs_f64() / PEER_REFILL.as_secs_f64()).floor() as usize;
    for _ in 0..burst {
        let (status, _) = h.call(
            tcp(),
            Method::POST,
            "/v1/config/apply",
            Some(body.clone()),
            &[],
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let grown = log_len() - before;
    assert!(
        grown < 8 * 1024,
        "{burst} refused 1 MB requests added {grown} bytes to the audit log"
    );
    let refusals = |source: &str| -> Vec<portcullis_control::audit::AuditRecord> {
        h.audit()
            .into_iter()
            .filter(|r| r.result.starts_with("refused:") && r.source == source)
            .collect()
    };
    let records = refusals("tcp:198.18.0.7:40000");
    assert_eq!(records.len(), burst);
    for r in &records {
        assert_eq!(r.action, "config.apply");
        assert_eq!(r.args["method"], "POST", "{:?}", r.args);
        assert_eq!(r.args["path"], "/v1/config/apply");
        assert_eq!(r.args["body_bytes"], bytes.len());
        assert_eq!(r.args["body_sha256"], sha.as_str());
        assert!(r.args.get("body").is_none(), "no body in a refusal record");
    }
    // Over the burst: answered the same, counted, not written.
    let before = log_len();
    for _ in 0..15 {
        let (status, _) = h.call(
            tcp(),
            Method::POST,
            "/v1/config/apply",
            Some(body.clone()),
            &[],
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let extra = refusals("tcp:198.18.0.7:40000").len() - burst;
    assert!(
        extra <= earned(),
        "{extra} records past the burst after {:?}",
        t0.elapsed()
    );
    if extra == 0 {
        assert_eq!(log_len(), before, "suppressed refusals write nothing");
    }
    let suppressed = 15 - extra as u64;
    assert_eq!(
        h.daemon.state.refusals.lock().unwrap().suppressed_total,
        suppressed
    );
    // Another peer, and a local caller, are still recorded.
    let other = Peer {
        tcp: Some("198.18.0.8:40000".parse().unwrap()),
        ..Peer::default()
    };
    let (status, _) = h.call(other, Method::GET, "/v1/status", None, &[]);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refusals("tcp:198.18.0.8:40000").len(), 1);
    let (status, _) = h.call(NOBODY, Method::GET, "/v1/status", None, &[]);
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The summary names the flooding peer with its count.
    let summary = h
        .daemon
        .state
        .refusals
        .lock()
        .unwrap()
        .take_summary(std::time::Instant::now())
        .unwrap();
    assert_eq!(summary.suppressed, suppressed);
    assert_eq!(
        summary.top,
        vec![("tcp:198.18.0.7".to_string(), suppressed)]
    );
}

#[test]
fn revoking_a_member_or_a_token_by_apply_takes_effect_at_once() {
    let (token, hash) = new_token("ci-bot").unwrap();
    let tokens = token_table("ci-bot", "operator", &hash, None);
    let h = harness("revoke", &tokens);
    let with_token = [("authorization", bearer(&token))];
    let with_token: Vec<(&str, &str)> = with_token.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let clear = |peer: Peer, headers: &[(&str, &str)]| {
        h.call(peer, Method::POST, "/v1/counters/clear", None, headers)
            .0
    };
    assert_eq!(clear(OPERATOR, &[]), StatusCode::NO_CONTENT);
    assert_eq!(clear(tcp(), &with_token), StatusCode::NO_CONTENT);

    // The same host binding without the operator `daemon` and without the token.
    let revoked =
        format!("{PROFILE}{}", host("")).replace("operator = { users = [\"daemon\"] }\n", "");
    assert!(!revoked.contains("daemon"));
    let apply = |dry_run: bool| {
        h.call(
            ROOT,
            Method::POST,
            "/v1/config/apply",
            Some(serde_json::json!({
                "profile": { "name": "rbac.toml", "text": revoked },
                "dry_run": dry_run,
            })),
            &[],
        )
    };
    let (status, dry) = apply(true);
    assert_eq!(status, StatusCode::OK, "{dry}");
    let diff = dry["diff"].as_str().unwrap();
    assert!(
        diff.contains("~ management.roles.operator.users: [daemon] → []"),
        "{diff}"
    );
    assert!(
        diff.contains("- management.token.ci-bot.role = operator"),
        "{diff}"
    );
    assert!(
        diff.contains("- management.token.ci-bot.hash = sha256:"),
        "{diff}"
    );
    assert!(
        !diff.contains(&hash),
        "the hash itself is never shown: {diff}"
    );
    assert_eq!(dry["applied"], false);
    assert_eq!(
        clear(OPERATOR, &[]),
        StatusCode::NO_CONTENT,
        "a dry run changes nothing"
    );

    let (status, done) = apply(false);
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["applied"], true, "{done}");
    assert_eq!(done["changes"], dry["changes"]);
    assert_eq!(clear(OPERATOR, &[]), StatusCode::FORBIDDEN);
    let (_, me) = h.call(OPERATOR, Method::GET, "/v1/whoami", None, &[]);
    assert!(me["role"].is_null(), "no role any more: {me}");
    assert_eq!(clear(tcp(), &with_token), StatusCode::UNAUTHORIZED);
    // The apply is audited with its diff.
    let applied = h
        .audit()
        .into_iter()
        .rev()
        .find(|r| r.action == "config.apply" && r.result == "ok")
        .expect("the apply's outcome record");
    let keys: Vec<&str> = applied.args["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"management.roles.operator.users"),
        "{keys:?}"
    );

    // The audit's syslog copy and the metrics listener are in the diff too.
    let syslog = revoked.replace(
        "[host.management.roles]",
        "[host.management]\naudit_syslog = \"udp:127.0.0.1:9\"\nmetrics_listen = \"127.0.0.1:9\"\n\n[host.management.roles]",
    );
    let (status, v) = h.call(
        ROOT,
        Method::POST,
        "/v1/config/apply",
        Some(serde_json::json!({ "profile": { "name": "rbac.toml", "text": syslog } })),
        &[],
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    let diff = v["diff"].as_str().unwrap();
    assert!(
        diff.contains("~ management.audit_syslog_target: none → udp:127.0.0.1:9"),
        "{diff}"
    );
    assert!(
        diff.contains("~ management.metrics_listen: none → 127.0.0.1:9"),
        "{diff}"
    );
    assert_eq!(v["applied"], true);
}

/// `GET /v1/audit`: admins and auditors read the records (filtered, the last
/// `limit`) with the chain's verification; operators and callers without a role
/// are refused, and the refusal is itself a record.
#[test]
fn the_audit_log_is_read_through_the_api_by_admins_and_auditors_only() {
    let h = harness("audit-read", "");
    let (status, _) = h.call(ROOT, Method::POST, "/v1/counters/clear", None, &[]);
    assert!(status.is_success(), "{status}");
    for peer in [OPERATOR, NOBODY] {
        let (status, v) = h.call(peer, Method::GET, "/v1/audit", None, &[]);
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    for peer in [ROOT, AUDITOR] {
        let (status, v) = h.call(peer, Method::GET, "/v1/audit", None, &[]);
        assert_eq!(status, StatusCode::OK, "{v}");
        let view: portcullis_api::AuditView = serde_json::from_value(v).unwrap();
        assert_eq!(view.verify_error, None);
        assert_eq!(view.records, h.audit(), "every record, as stored");
        assert_eq!(view.total, view.records.len());
        assert!(
            view.records
                .iter()
                .any(|r| r.action == "counters.clear" && r.result == "ok"),
            "{:?}",
            view.records
        );
        assert_eq!(
            view.records
                .iter()
                .filter(|r| r.result.starts_with("refused:"))
                .count(),
            2,
            "the two refusals above"
        );
    }
    // Filters: one action, the last record only, a time; a bad time is refused.
    let (_, v) = h.call(
        AUDITOR,
        Method::GET,
        "/v1/audit?action=counters.clear",
        None,
        &[],
    );
    let view: portcullis_api::AuditView = serde_json::from_value(v).unwrap();
    assert!(!view.records.is_empty());
    assert!(view.records.iter().all(|r| r.action == "counters.clear"));
    let (_, v) = h.call(AUDITOR, Method::GET, "/v1/audit?limit=1", None, &[]);
    let view: portcullis_api::AuditView = serde_json::from_value(v).unwrap();
    assert_eq!(view.records.len(), 1);
    assert_eq!(Some(&view.records[0]), h.audit().last());
    let (_, v) = h.call(
        AUDITOR,
        Method::GET,
        "/v1/audit?since=2999-01-01T00:00:00Z",
        None,
        &[],
    );
    let view: portcullis_api::AuditView = serde_json::from_value(v).unwrap();
    assert!(view.records.is_empty(), "{:?}", view.records);
    assert!(view.total > 0);
    let (status, v) = h.call(AUDITOR, Method::GET, "/v1/audit?since=yesterday", None, &[]);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_time", "{v}");
}
