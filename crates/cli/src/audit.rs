//! `portcullis audit verify|show`: through the daemon's API (`GET /v1/audit`, for
//! admins and auditors), or with `--file` from the log file directly (root: the
//! file is 0600; works with the daemon stopped).

use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_control::audit::{self, AuditRecord};
use portcullis_daemon::{AUDIT_LOG, DEFAULT_STATE_DIR};
use std::path::PathBuf;

fn default_file() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR).join(AUDIT_LOG)
}

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

fn records_from_api(
    api: &crate::manage::ApiOpts,
    limit: Option<usize>,
) -> anyhow::Result<(Vec<AuditRecord>, usize, Option<String>)> {
    let path = match limit {
        Some(n) => format!("/v1/audit?limit={n}"),
        None => "/v1/audit?limit=1000000".to_string(),
    };
    let v = api.call(hyper::Method::GET, &path, None)?;
    let records: Vec<AuditRecord> = serde_json::from_value(v["records"].clone())?;
    let total = v["total"].as_u64().unwrap_or(0) as usize;
    Ok((
        records,
        total,
        v["verify_error"].as_str().map(str::to_string),
    ))
}

pub fn run(op: AuditOp, api: &crate::manage::ApiOpts) -> anyhow::Result<()> {
    match op {
        AuditOp::Verify { file: None } => {
            let (_, total, error) = records_from_api(api, Some(0))?;
            match error {
                None => {
                    println!("{total} records, chain intact");
                    Ok(())
                }
                Some(e) => bail!("the daemon's audit log: {e}"),
            }
        }
        AuditOp::Verify { file: Some(file) } => match audit::verify(&file) {
            Ok(n) => {
                println!("{n} records, chain intact");
                Ok(())
            }
            Err(e) => bail!("{}: {e}", file.display()),
        },
        AuditOp::Show {
            file,
            user,
            action,
            since,
            json,
        } => {
            let from_api = file.is_none();
            let file = file.unwrap_or_else(default_file);
            let since = since
                .map(|s| {
                    audit::parse_rfc3339(&s)
                        .with_context(|| format!("--since {s:?} is not an RFC 3339 time or date"))
                })
                .transpose()?;
            // A name (`alice`, `token:ci-bot`), or a uid (`65534`, `uid:65534`)
            // matched against the record's source.
            let uid = user
                .as_deref()
                .map(|u| u.strip_prefix("uid:").unwrap_or(u))
                .filter(|u| u.parse::<u32>().is_ok())
                .map(|u| format!("uid={u}"));
            let (records, unparsed) = if from_api {
                let (records, _, _) = records_from_api(api, None)?;
                (records, 0)
            } else {
                audit::read_records(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let keep = |r: &AuditRecord| {
                user.as_ref().is_none_or(|u| {
                    &r.user == u
                        || uid
                            .as_ref()
                            .is_some_and(|id| r.source.split([',', ':']).any(|part| part == id))
                }) && action.as_ref().is_none_or(|a| {
                    &r.action == a || (a.ends_with('.') && r.action.starts_with(a.as_str()))
                }) && since.is_none_or(|t| audit::parse_rfc3339(&r.time).is_some_and(|rt| rt >= t))
            };
            let shown: Vec<&AuditRecord> = records.iter().filter(|r| keep(r)).collect();
            if json {
                for r in &shown {
                    println!("{}", serde_json::to_string(r)?);
                }
            } else {
                println!(
                    "{:>6}  {:<24}  {:<10}  {:<6}  {:<16}  {:<24}  {:<40}  RESULT",
                    "SEQ", "TIME", "USER", "ROLE", "ACTION", "SOURCE", "ARGS"
                );
                for r in &shown {
                    println!(
                        "{:>6}  {:<24}  {:<10}  {:<6}  {:<16}  {:<24}  {:<40}  {}",
                        r.seq, r.time, r.user, r.role, r.action, r.source, r.args, r.result
                    );
                }
            }
            if unparsed > 0 {
                eprintln!(
                    "warning: {unparsed} line(s) of {} are not audit records; run `portcullis audit verify`",
                    file.display()
                );
            }
            Ok(())
        }
    }
}
