//! The management commands: `apply`, `profile export`, `check`, port and counter
//! operations, `whoami` — all clients of the daemon's API (Unix socket, or TCP+TLS
//! with `--api`, `--ca` and a token).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use portcullis_control::compliance::{self, Template};
use portcullis_daemon::DEFAULT_SOCKET;
use portcullis_daemon::api::{ApplyAnswer, ConfigView};
use portcullis_daemon::client::{Endpoint, call_endpoint_blocking};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How to reach the daemon.
#[derive(Args, Debug, Clone)]
pub struct ApiOpts {
    /// The daemon's Unix socket.
    #[arg(long, global = true, env = "PORTCULLIS_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Reach the daemon over TCP+TLS instead: HOST:PORT.
    #[arg(long, global = true, env = "PORTCULLIS_API")]
    pub api: Option<String>,
    /// The CA certificate (PEM) that signed the daemon's TLS certificate.
    #[arg(long, global = true, env = "PORTCULLIS_CA")]
    pub ca: Option<PathBuf>,
    /// A file holding the bearer token (`portcullis token new`); or set
    /// PORTCULLIS_TOKEN.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
}

impl ApiOpts {
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let Some(addr) = &self.api else {
            return Ok(Endpoint::Unix(self.socket.clone()));
        };
        let ca = self
            .ca
            .clone()
            .context("--api needs --ca (the CA certificate that signed the daemon's)")?;
        let token = match (&self.token_file, std::env::var("PORTCULLIS_TOKEN")) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the token file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, Ok(t)) => Some(t.trim().to_string()),
            (None, Err(_)) => None,
        };
        Ok(Endpoint::Tls {
            addr: addr.clone(),
            ca,
            token,
        })
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(call_endpoint_blocking(
            &self.endpoint()?,
            method,
            path,
            body,
        )?)
    }
}

#[derive(Subcommand, Debug)]
pub enum ProfileOp {
    /// Write the running profile (golden: without the host binding) to a file or
    /// stdout; `--host-out` also writes the host binding.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        host_out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PortCmd {
    /// Report a guest's effective MAC (as a hypervisor hook does when the guest
    /// reprograms its NIC). Under mac_changes = reject a MAC other than the initial
    /// one blocks frames to the port until the initial MAC is reported back.
    ReportMac { port: String, mac: String },
    /// Bring an error-disabled port back (port security shutdown, storm control).
    Recover { port: String },
    /// Administratively shut a port down (nothing in or out).
    Shutdown { port: String },
    /// Enable a port that was shut down.
    Enable { port: String },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct CheckAgainst {
    /// A golden profile (TOML) to compare the running profile with.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// A hardening template: a built-in name (`baseline`, `strict`) or a file.
    #[arg(long)]
    pub template: Option<String>,
}

fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn profile(op: ProfileOp, api: &ApiOpts) -> anyhow::Result<()> {
    match op {
        ProfileOp::Export { output, host_out } => {
            let v: ConfigView =
                serde_json::from_value(api.call(Method::GET, "/v1/config", None)?)?;
            write_out(output.as_deref(), &v.profile.text)?;
            if let Some(h) = host_out {
                write_out(Some(&h), &v.host.text)?;
            }
            Ok(())
        }
    }
}

fn read_source(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::json!({ "name": path.display().to_string(), "text": text }))
}

/// `portcullis apply FILE [--host FILE] [--dry-run]`: exit 0 applied (or nothing
/// to apply), 1 refused.
pub fn apply(file: &Path, host: Option<&Path>, dry_run: bool, api: &ApiOpts) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "profile": read_source(file)?,
        "host": host.map(read_source).transpose()?,
        "dry_run": dry_run,
    });
    let v = api.call(Method::POST, "/v1/config/apply", Some(body))?;
    let a: ApplyAnswer = serde_json::from_value(v)?;
    print!("{}", a.diff);
    if !a.diff.ends_with('\n') {
        println!();
    }
    for n in &a.notes {
        println!("note: {n}");
    }
    if dry_run {
        println!("dry run: {} change(s), nothing applied", a.changes.len());
    } else if a.applied {
        let c = a.carry_over.unwrap_or_default();
        println!(
            "applied {} change(s); kept {} MAC entries and {} bindings (dropped {} and {})",
            a.changes.len(),
            c["macs_kept"],
            c["bindings_kept"],
            c["macs_dropped"],
            c["bindings_dropped"],
        );
    } else {
        println!("nothing to apply: the running configuration is the same");
    }
    Ok(())
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
    if let Some(golden) = &against.profile {
        let golden = portcullis_control::load(golden, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        let running = portcullis_control::parse_str(
            &v.profile.text,
            &v.profile.name,
            Some((&v.host.text, &v.host.name)),
        )
        .map_err(|e| anyhow::anyhow!("the running configuration does not parse: {e}"))?;
        return Ok(compliance::check_profile(
            &golden.profile,
            &running.profile,
            Some(&running.host),
        ));
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

pub fn port(op: PortCmd, api: &ApiOpts) -> anyhow::Result<()> {
    match op {
        PortCmd::ReportMac { port, mac } => {
            api.call(
                Method::PUT,
                &format!("/v1/ports/{port}/effective-mac"),
                Some(serde_json::json!({ "mac": mac })),
            )?;
            println!("port {port}: effective MAC {mac} reported");
        }
        PortCmd::Recover { port } => {
            let v = api.call(Method::POST, &format!("/v1/ports/{port}/recover"), None)?;
            if v["recovered"] == true {
                println!("port {port}: recovered");
            } else {
                println!("port {port}: was not error-disabled");
            }
        }
        PortCmd::Shutdown { port } => {
            api.call(Method::POST, &format!("/v1/ports/{port}/shutdown"), None)?;
            println!("port {port}: administratively down");
        }
        PortCmd::Enable { port } => {
            api.call(Method::POST, &format!("/v1/ports/{port}/enable"), None)?;
            println!("port {port}: enabled");
        }
    }
    Ok(())
}

/// `portcullis trace --live`: the frame through a copy of the running switch, asked
/// of the daemon (`POST /v1/trace`), printed as the offline trace is.
pub fn trace_live(args: &crate::trace::TraceArgs, api: &ApiOpts) -> anyhow::Result<ExitCode> {
    let frame = match (&args.hex, &args.frame) {
        (Some(h), _) => crate::trace::parse_hex(h).map_err(|e| anyhow::anyhow!("--hex: {e}")),
        (_, Some(d)) => crate::trace::build_frame(d).map_err(|e| anyhow::anyhow!("--frame: {e}")),
        _ => Err(anyhow::anyhow!(
            "--live traces a frame given with --hex or --frame"
        )),
    };
    let frame = match frame {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let v = api.call(
        hyper::Method::POST,
        "/v1/trace",
        Some(serde_json::json!({ "port": args.port, "hex": hex })),
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "frame: {} ({} bytes) on {} (live, on a copy of the running switch)",
        crate::replay::describe_frame(&frame),
        frame.len(),
        args.port
    )?;
    for (i, s) in v["stages"].as_array().into_iter().flatten().enumerate() {
        let decision = match s["reason"].as_str() {
            Some(r) => format!("{} {r}", s["decision"].as_str().unwrap_or("")),
            None => s["decision"].as_str().unwrap_or("").to_string(),
        };
        writeln!(
            out,
            "{:>3}. {:<18} {:<8} {}",
            i + 1,
            s["title"].as_str().unwrap_or(""),
            decision,
            s["text"].as_str().unwrap_or("")
        )?;
    }
    for e in v["events"].as_array().into_iter().flatten() {
        writeln!(out, "     event {}", e["kind"])?;
    }
    writeln!(out, "verdict: {}", v["verdict"].as_str().unwrap_or("?"))?;
    Ok(ExitCode::SUCCESS)
}
