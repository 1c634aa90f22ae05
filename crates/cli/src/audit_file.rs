//! `portcullis audit verify|show --file FILE`: the audit log read directly (a copy,
//! or the daemon's own as root while it is stopped), verified and filtered with
//! `portcullis_control::audit`, printed as the API path prints
//! (`crate::client::audit`).
//!
//! Invariant: offline — no call to the daemon; a line that is not a record is
//! counted and reported, never silently skipped.

use crate::client::audit::{AuditOp, Filter, print};
use anyhow::{Context, bail};
use portcullis_control::audit::{self, AuditRecord};

/// `portcullis audit …` with `--file`.
pub fn run(op: AuditOp) -> anyhow::Result<()> {
    match op {
        AuditOp::Verify { file } => {
            let file = file.context("--file is required here")?;
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
            let file = file.context("--file is required here")?;
            let since = since
                .map(|s| {
                    audit::parse_rfc3339(&s)
                        .with_context(|| format!("--since {s:?} is not an RFC 3339 time or date"))
                })
                .transpose()?;
            let (records, unparsed) = audit::read_records(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let filter = Filter::new(user, action);
            let shown: Vec<&AuditRecord> = records
                .iter()
                .filter(|r| {
                    filter.keeps(r)
                        && since
                            .is_none_or(|t| audit::parse_rfc3339(&r.time).is_some_and(|rt| rt >= t))
                })
                .collect();
            print(&shown, json)?;
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
