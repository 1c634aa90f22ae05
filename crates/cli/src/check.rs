//! `portcullis check`: the running configuration (fetched through the API) against
//! a golden profile or a hardening template, judged here by
//! `portcullis_control::compliance` — so this command links the configuration
//! library, unlike the pure client commands in `client/`.
//!
//! Invariant: exit 0 compliant, 1 drift, 2 cannot check; nothing is changed.

use crate::client::ApiOpts;
use anyhow::{Context, bail};
use clap::Args;
use portcullis_api::{ConfigView, Method};
use portcullis_control::compliance::{self, Template};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
pub struct CheckAgainst {
    /// A golden profile (TOML) to compare the running profile with.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// A hardening template: a built-in name (`baseline`, `strict`) or a file.
    #[arg(long)]
    pub template: Option<String>,
}

/// `portcullis check`: 0 compliant, 1 drift, 2 cannot check.
pub fn check(against: &CheckAgainst, json: bool, api: &ApiOpts) -> ExitCode {
    match check_inner(against, api) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", report.render());
            }
            if report.compliant {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_inner(
    against: &CheckAgainst,
    api: &ApiOpts,
) -> anyhow::Result<compliance::ComplianceReport> {
    let v: ConfigView = serde_json::from_value(api.call(Method::GET, "/v1/config", None)?)?;
    let mut report = check_config(against, &v)?;
    report.host_state = v
        .runtime_ports
        .iter()
        .map(crate::client::manage::runtime_port_line)
        .collect();
    Ok(report)
}

fn check_config(
    against: &CheckAgainst,
    v: &ConfigView,
) -> anyhow::Result<compliance::ComplianceReport> {
    if let Some(golden) = &against.profile {
        let text = std::fs::read_to_string(golden)
            .with_context(|| format!("cannot read {}", golden.display()))?;
        return compliance::check_golden(
            &text,
            &golden.display().to_string(),
            (&v.profile.text, &v.profile.name),
            (&v.host.text, &v.host.name),
        )
        .map_err(|e| anyhow::anyhow!(e));
    }
    let Some(name) = &against.template else {
        bail!("give --profile FILE or --template NAME");
    };
    let template = match Template::builtin(name) {
        Some(t) => t,
        None => {
            let path = Path::new(name);
            if !path.is_file() {
                bail!(
                    "{name:?} is neither a built-in template ({}) nor a file",
                    Template::builtin_names().join(", ")
                );
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Template::parse(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!(e))?
        }
    };
    Ok(compliance::check_template(&template, &v.flat))
}
