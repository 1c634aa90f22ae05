//! The cluster from the command line (docs/cluster.md): `apply --cluster`
//! (optionally `--canary HOST` first), `check --cluster` (drift per host, field
//! by field) and `cluster status`. These act on etcd, the cluster's one store;
//! each host's agent does the rest through its own apply path.
//!
//! Invariant: a profile is validated here before it is stored, and a canary that
//! fails its checks is withdrawn (its host goes back to the stored profile) —
//! nothing else in the cluster changes.

use anyhow::{Context, bail};
use clap::Args;
use portcullis_cluster::schema::{CanaryRecord, FORMAT, HostStatus, ProfileRecord, unix_now};
use portcullis_cluster::{EtcdOptions, Store};
use portcullis_control::compliance::{self, ComplianceReport};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the cluster's etcd is.
#[derive(Args, Debug, Clone, Default)]
pub struct EtcdArgs {
    /// The cluster's etcd client URLs (comma-separated).
    #[arg(long = "cluster", value_delimiter = ',', value_name = "URL")]
    pub cluster: Vec<String>,
    /// TLS to etcd: the CA that signed its certificate (PEM).
    #[arg(long, requires = "cluster")]
    pub etcd_ca: Option<PathBuf>,
    /// TLS to etcd: this client's certificate and key (PEM).
    #[arg(long, requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// TLS to etcd: the private key of --etcd-cert (PEM).
    #[arg(long, requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// The cluster's key prefix in etcd.
    #[arg(long, default_value = portcullis_cluster::schema::DEFAULT_PREFIX)]
    pub cluster_prefix: String,
}

impl EtcdArgs {
    pub fn options(&self) -> EtcdOptions {
        let mut o = EtcdOptions::new(self.cluster.clone());
        o.ca = self.etcd_ca.clone();
        o.cert = self.etcd_cert.clone();
        o.key = self.etcd_key.clone();
        o.prefix = Some(self.cluster_prefix.clone());
        o
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// The profile part of `file`, validated: a file with a `[host]` table is a
/// whole configuration, whose profile alone goes to the cluster (each host
/// keeps its own binding).
fn profile_text(file: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    // A profile alone names logical uplinks (and an overlay endpoint) that each
    // host binds itself: validated with a stand-in binding, never stored.
    let (config, _) = portcullis_control::config::parse_profile_alone(&text, &name)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(portcullis_control::export::export_profile(&config))
}

/// The statuses of the live hosts (a status without a live host key is left out).
async fn live_statuses(store: &Store) -> anyhow::Result<Vec<HostStatus>> {
    let hosts: Vec<String> = store
        .hosts()
        .await?
        .into_iter()
        .filter_map(|(_, h)| h.ok().map(|h| h.value.host))
        .collect();
    let mut out = Vec::new();
    for (key, s) in store.statuses().await? {
        match s {
            Ok(s) if hosts.contains(&s.value.host) => out.push(s.value),
            Ok(_) => {}
            Err(e) => eprintln!("warning: {key}: {e}"),
        }
    }
    Ok(out)
}

/// `portcullis apply --cluster FILE [--canary HOST]`: 0 applied on every live
/// host, 1 refused somewhere (or the canary failed), 2 cannot apply.
pub fn apply(file: &Path, canary: Option<&str>, wait: Duration, etcd: &EtcdArgs) -> ExitCode {
    match runtime().and_then(|rt| rt.block_on(apply_inner(file, canary, wait, etcd))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn apply_inner(
    file: &Path,
    canary: Option<&str>,
    wait: Duration,
    etcd: &EtcdArgs,
) -> anyhow::Result<bool> {
    let text = profile_text(file)?;
    let store = Store::connect(&etcd.options()).await?;
    let profile = ProfileRecord {
        format: FORMAT,
        name: file.display().to_string(),
        text: text.clone(),
        stored_by: who(),
        stored_unix: unix_now(),
    };
    if let Some(host) = canary {
        if !store.host_live(host).await? {
            bail!("canary host {host:?} is not live in the cluster");
        }
        let rev = store
            .store_canary(&CanaryRecord {
                format: FORMAT,
                host: host.to_string(),
                name: profile.name.clone(),
                text: text.clone(),
                stored_by: profile.stored_by.clone(),
                stored_unix: profile.stored_unix,
            })
            .await?;
        println!("canary: generation {rev} stored for {host}");
        let verdict = wait_canary(&store, host, rev, &text, wait).await;
        match verdict {
            Ok(()) => {
                println!("canary: {host} applied it and is compliant; rolling out");
            }
            Err(why) => {
                store.end_canary(None).await?;
                println!(
                    "canary: {host} failed ({why}); withdrawn, {host} returns to the stored profile"
                );
                return Ok(false);
            }
        }
        let rev = store.end_canary(Some(&profile)).await?;
        return wait_all(&store, rev, wait).await;
    }
    let rev = store.store_profile(&profile).await?;
    println!("profile: generation {rev} stored");
    wait_all(&store, rev, wait).await
}

async fn wait_canary(
    store: &Store,
    host: &str,
    rev: i64,
    text: &str,
    wait: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let statuses = live_statuses(store).await.map_err(|e| e.to_string())?;
        if let Some(s) = statuses.iter().find(|s| s.host == host)
            && s.canary_generation == Some(rev)
        {
            if let Some(e) = &s.error {
                return Err(format!("refused: {e}"));
            }
            let report = compliance::check_golden(
                text,
                "canary",
                (&s.profile_text, host),
                (&s.host_text, host),
            )?;
            if !report.compliant {
                return Err(format!("drift after apply:\n{}", report.render()));
            }
            return Ok(());
        }
        if start.elapsed() > wait {
            return Err(format!("no answer within {wait:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every live host applied generation `rev` or said why not.
async fn wait_all(store: &Store, rev: i64, wait: Duration) -> anyhow::Result<bool> {
    let start = Instant::now();
    loop {
        let statuses = live_statuses(store).await?;
        let done = statuses.iter().all(|s| {
            s.generation >= rev
                || s.error
                    .as_deref()
                    .is_some_and(|e| e.contains(&format!("generation {rev}:")))
        });
        if done || start.elapsed() > wait {
            let mut ok = true;
            for s in &statuses {
                if s.generation >= rev {
                    println!("  {:<16} applied (generation {})", s.host, s.generation);
                } else {
                    ok = false;
                    println!(
                        "  {:<16} NOT applied, keeps generation {}: {}",
                        s.host,
                        s.generation,
                        s.error.as_deref().unwrap_or("no answer yet")
                    );
                }
            }
            println!(
                "{} of {} host(s) applied generation {rev} in {:.2} s",
                statuses.iter().filter(|s| s.generation >= rev).count(),
                statuses.len(),
                start.elapsed().as_secs_f64()
            );
            return Ok(ok);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Serialize)]
struct HostCheck {
    host: String,
    generation: i64,
    report: Option<ComplianceReport>,
    error: Option<String>,
}

/// `portcullis check --cluster`: every live host's running profile against the
/// stored one. 0 all compliant, 1 drift somewhere, 2 cannot check.
pub fn check(json: bool, etcd: &EtcdArgs) -> ExitCode {
    let r = runtime().and_then(|rt| rt.block_on(check_inner(etcd)));
    match r {
        Ok((generation, checks)) => {
            let compliant = checks
                .iter()
                .all(|c| c.report.as_ref().is_some_and(|r| r.compliant));
            if json {
                let v = serde_json::json!({ "generation": generation, "compliant": compliant, "hosts": checks });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("cluster profile generation {generation}");
                for c in &checks {
                    match (&c.report, &c.error) {
                        (Some(r), _) if r.compliant => {
                            println!("== {}: compliant (generation {})", c.host, c.generation);
                        }
                        (Some(r), _) => {
                            println!("== {}: DRIFT (generation {})", c.host, c.generation);
                            print!("{}", r.render());
                        }
                        (None, e) => println!(
                            "== {}: cannot check: {}",
                            c.host,
                            e.as_deref().unwrap_or("?")
                        ),
                    }
                }
            }
            if compliant {
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

async fn check_inner(etcd: &EtcdArgs) -> anyhow::Result<(i64, Vec<HostCheck>)> {
    let store = Store::connect(&etcd.options()).await?;
    let Some(profile) = store.profile().await? else {
        bail!("no profile is stored in the cluster (portcullis apply --cluster FILE)");
    };
    let mut out = Vec::new();
    for s in live_statuses(&store).await? {
        let r = compliance::check_golden(
            &profile.value.text,
            &format!("cluster generation {}", profile.mod_revision),
            (&s.profile_text, &s.host),
            (&s.host_text, &s.host),
        );
        let (report, error) = match r {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        out.push(HostCheck {
            host: s.host,
            generation: s.generation,
            report,
            error,
        });
    }
    Ok((profile.mod_revision, out))
}

/// `portcullis cluster status`.
pub fn status(json: bool, etcd: &EtcdArgs) -> ExitCode {
    let r = runtime().and_then(|rt| rt.block_on(status_inner(etcd)));
    match r {
        Ok(v) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "profile generation {}",
                    v["generation"].as_i64().unwrap_or(0)
                );
                println!(
                    "{:<16} {:<10} {:<9} {:>10} {:>6} {:>9}  ERROR",
                    "HOST", "VERSION", "HEALTH", "GENERATION", "PORTS", "BINDINGS"
                );
                for h in v["hosts"].as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<10} {:<9} {:>10} {:>6} {:>9}  {}",
                        h["host"].as_str().unwrap_or("?"),
                        h["version"].as_str().unwrap_or("?"),
                        h["health"].as_str().unwrap_or("?"),
                        h["generation"].as_i64().unwrap_or(0),
                        h["ports"].as_u64().unwrap_or(0),
                        h["bindings"].as_u64().unwrap_or(0),
                        h["error"].as_str().unwrap_or("")
                    );
                }
                println!(
                    "logical ports: {} ({} away)",
                    v["ports"].as_u64().unwrap_or(0),
                    v["ports_away"].as_u64().unwrap_or(0)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn status_inner(etcd: &EtcdArgs) -> anyhow::Result<serde_json::Value> {
    let store = Store::connect(&etcd.options()).await?;
    let generation = store.profile().await?.map_or(0, |p| p.mod_revision);
    let live: Vec<String> = store
        .hosts()
        .await?
        .into_iter()
        .filter_map(|(_, h)| h.ok().map(|h| h.value.host))
        .collect();
    let statuses = live_statuses(&store).await?;
    let mut hosts = Vec::new();
    for h in &live {
        match statuses.iter().find(|s| &s.host == h) {
            Some(s) => hosts.push(serde_json::json!({
                "host": s.host, "version": s.version, "health": s.health,
                "generation": s.generation, "ports": s.ports, "bindings": s.bindings,
                "error": s.error,
            })),
            None => hosts.push(serde_json::json!({ "host": h, "health": "starting" })),
        }
    }
    let ports = store.ports().await?;
    let away = ports
        .iter()
        .filter(|(_, p)| {
            p.as_ref().is_ok_and(|p| {
                p.value.state == portcullis_cluster::PortState::Away
                    || !live.contains(&p.value.owner)
            })
        })
        .count();
    Ok(serde_json::json!({
        "generation": generation,
        "hosts": hosts,
        "ports": ports.len(),
        "ports_away": away,
    }))
}
