//! `portcullis audit verify|show` through the daemon's API (`GET /v1/audit`, for
//! admins and auditors): the daemon verifies the chain and filters by time; the
//! user and action filters and the table are here. With `--file` the same
//! commands read a log file directly (`crate::audit_file`, root: the file is 0600;
//! works with the daemon stopped), and print with [`print`].
//!
//! Invariant: a record is printed as the daemon stored it; `show` never claims the
//! chain verifies (only `verify` says so).

use super::ApiOpts;
use anyhow::bail;
use clap::Subcommand;
use portcullis_api::{AuditRecord, AuditView, Method};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum AuditOp {
    /// Check the hash chain; names the first edited, removed, reordered or
    /// truncated record and exits 1.
    Verify {
        /// Read this log file instead of asking the daemon.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print records, optionally filtered (filters combine). Does not verify.
    Show {
        /// Read this log file instead of asking the daemon.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Only this user: a name (`alice`, `token:ci-bot`) or a uid (`0`, `uid:0`).
        #[arg(long)]
        user: Option<String>,
        /// Only this action (`binding.add`), or a prefix ending in `.` (`binding.`).
        #[arg(long)]
        action: Option<String>,
        /// Only records at or after this time (RFC 3339, or a date `2026-11-26`).
        #[arg(long)]
        since: Option<String>,
        /// One JSON record per line, as stored.
        #[arg(long)]
        json: bool,
    },
}

impl AuditOp {
    /// The log file given with `--file`, if any (then the command is offline).
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            AuditOp::Verify { file } | AuditOp::Show { file, .. } => file.as_ref(),
        }
    }
}

/// The daemon's records at or after `since` (the last `limit`, or all) with the
/// total in its log and its chain verification.
fn records_from_api(
    api: &ApiOpts,
    since: Option<&str>,
    limit: Option<usize>,
) -> anyhow::Result<AuditView> {
    let mut path = format!("/v1/audit?limit={}", limit.unwrap_or(1_000_000));
    if let Some(s) = since {
        path.push_str("&since=");
        path.push_str(&query_escape(s));
    }
    Ok(serde_json::from_value(api.call(
        Method::GET,
        &path,
        None,
    )?)?)
}

/// `s` as a query value: unreserved characters kept, the rest percent-encoded.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `portcullis audit verify|show` without `--file`.
pub fn run(op: AuditOp, api: &ApiOpts) -> anyhow::Result<()> {
    match op {
        AuditOp::Verify { .. } => {
            let v = records_from_api(api, None, Some(0))?;
            match v.verify_error {
                None => {
                    println!("{} records, chain intact", v.total);
                    Ok(())
                }
                Some(e) => bail!("the daemon's audit log: {e}"),
            }
        }
        AuditOp::Show {
            user,
            action,
            since,
            json,
            ..
        } => {
            let v = records_from_api(api, since.as_deref(), None)?;
            let filter = Filter::new(user, action);
            let shown: Vec<&AuditRecord> = v.records.iter().filter(|r| filter.keeps(r)).collect();
            print(&shown, json)
        }
    }
}

/// The user and action filters of `audit show`.
#[derive(Debug, Default)]
pub struct Filter {
    user: Option<String>,
    /// `uid=N` when the user was given as a uid, matched against the source.
    uid: Option<String>,
    action: Option<String>,
}

impl Filter {
    pub fn new(user: Option<String>, action: Option<String>) -> Filter {
        // A name (`alice`, `token:ci-bot`), or a uid (`65534`, `uid:65534`)
        // matched against the record's source.
        let uid = user
            .as_deref()
            .map(|u| u.strip_prefix("uid:").unwrap_or(u))
            .filter(|u| u.parse::<u32>().is_ok())
            .map(|u| format!("uid={u}"));
        Filter { user, uid, action }
    }

    pub fn keeps(&self, r: &AuditRecord) -> bool {
        self.user.as_ref().is_none_or(|u| {
            &r.user == u
                || self
                    .uid
                    .as_ref()
                    .is_some_and(|id| r.source.split([',', ':']).any(|part| part == id))
        }) && self.action.as_ref().is_none_or(|a| {
            &r.action == a || (a.ends_with('.') && r.action.starts_with(a.as_str()))
        })
    }
}

/// The records as a table, or one JSON record per line.
pub fn print(shown: &[&AuditRecord], json: bool) -> anyhow::Result<()> {
    if json {
        for r in shown {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        println!(
            "{:>6}  {:<24}  {:<10}  {:<6}  {:<16}  {:<24}  {:<40}  RESULT",
            "SEQ", "TIME", "USER", "ROLE", "ACTION", "SOURCE", "ARGS"
        );
        for r in shown {
            println!(
                "{:>6}  {:<24}  {:<10}  {:<6}  {:<16}  {:<24}  {:<40}  {}",
                r.seq, r.time, r.user, r.role, r.action, r.source, r.args, r.result
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str, source: &str, action: &str) -> AuditRecord {
        AuditRecord {
            seq: 1,
            time: "2026-11-26T21:51:50.123Z".into(),
            user: user.into(),
            role: "admin".into(),
            source: source.into(),
            action: action.into(),
            args: serde_json::Value::Null,
            result: "ok".into(),
            prev: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn filters_match_a_name_a_uid_and_an_action_prefix() {
        let r = record("nobody", "unix:pid=7,uid=65534", "binding.add");
        assert!(Filter::new(None, None).keeps(&r));
        assert!(Filter::new(Some("nobody".into()), None).keeps(&r));
        assert!(Filter::new(Some("65534".into()), None).keeps(&r));
        assert!(Filter::new(Some("uid:65534".into()), None).keeps(&r));
        assert!(!Filter::new(Some("0".into()), None).keeps(&r));
        assert!(Filter::new(None, Some("binding.".into())).keeps(&r));
        assert!(Filter::new(None, Some("binding.add".into())).keeps(&r));
        assert!(!Filter::new(None, Some("binding".into())).keeps(&r));
        assert!(!Filter::new(Some("nobody".into()), Some("port.".into())).keeps(&r));
    }

    #[test]
    fn a_since_value_is_escaped_for_the_query() {
        assert_eq!(
            query_escape("2026-11-26T21:51:50+01:00"),
            "2026-11-26T21%3A51%3A50%2B01%3A00"
        );
    }
}
