//! `portcullis audit verify|show`: read the audit log file directly.

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
        /// The audit log (default: /var/lib/portcullis/audit.log).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print records, optionally filtered (filters combine). Does not verify.
    Show {
        #[arg(long)]
        file: Option<PathBuf>,
        /// Only this user (`uid:0`, or just `0`).
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

pub fn run(op: AuditOp) -> anyhow::Result<()> {
    match op {
        AuditOp::Verify { file } => {
            let file = file.unwrap_or_else(default_file);
            match audit::verify(&file) {
                Ok(n) => {
                    println!("{n} records, chain intact");
                    Ok(())
                }
                Err(e) => bail!("{}: {e}", file.display()),
            }
        }
        AuditOp::Show {
            file,
            user,
            action,
            since,
            json,
        } => {
            let file = file.unwrap_or_else(default_file);
            let since = since
                .map(|s| {
                    audit::parse_rfc3339(&s)
                        .with_context(|| format!("--since {s:?} is not an RFC 3339 time or date"))
                })
                .transpose()?;
            let user = user.map(|u| {
                if u.starts_with("uid:") {
                    u
                } else {
                    format!("uid:{u}")
                }
            });
            let (records, unparsed) = audit::read_records(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let keep = |r: &AuditRecord| {
                user.as_ref().is_none_or(|u| &r.user == u)
                    && action.as_ref().is_none_or(|a| {
                        &r.action == a || (a.ends_with('.') && r.action.starts_with(a.as_str()))
                    })
                    && since.is_none_or(|t| audit::parse_rfc3339(&r.time).is_some_and(|rt| rt >= t))
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
