//! `portcullis`: the daemon, the API client commands and the demo.

mod adopt;
mod audit_file;
mod capture;
mod check;
mod client;
mod cluster;
mod demo;
mod generate;
mod labtools;
mod replay;
mod token;
mod trace;

use client::{audit, hosts, manage, show, top};

use clap::{Parser, Subcommand, ValueEnum};
use portcullis_daemon::{DEFAULT_SOCKET, DEFAULT_STATE_DIR, DaemonOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A secure virtual switch for Linux hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    /// One human-readable line per record.
    Text,
    /// One JSON object per line, for journald or a log collector.
    Json,
}

#[derive(Subcommand, Debug)]
enum ClusterOp {
    /// Hosts, versions, health, profile generation, port and binding counts.
    Status {
        /// The status as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        etcd: cluster::EtcdArgs,
    },
}

/// The machine's name: the default host id in a cluster.
fn default_host_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the switch in the foreground until SIGINT/SIGTERM; SIGHUP applies the
    /// configuration files again (`systemctl reload`).
    Daemon {
        /// The profile (TOML); it may also hold the host binding.
        #[arg(long, short)]
        config: PathBuf,
        /// The host binding (TOML with a [host] table), if not in --config.
        #[arg(long)]
        host: Option<PathBuf>,
        /// The Unix socket the API listens on; a caller is known by its uid and groups
        /// (`[host.management.roles]`).
        #[arg(long, env = "PORTCULLIS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Where the durable state lives: the binding database, sticky MACs, the
        /// audit log.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The log records' format on standard error.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// A cluster member: etcd's URLs and TLS (docs/cluster.md).
        #[command(flatten)]
        etcd: cluster::EtcdArgs,
        /// This host's id in the cluster (unique among live hosts).
        #[arg(long, requires = "cluster", default_value_t = default_host_id())]
        host_id: String,
        /// The host's lease in etcd: its ports can be claimed elsewhere this long
        /// after it stops renewing it.
        #[arg(long, default_value_t = 10)]
        cluster_lease_secs: u64,
        /// The longest a DHCP ACK waits for its binding to reach etcd after the
        /// local commit (decisions.md).
        #[arg(long, default_value_t = 250)]
        cluster_commit_wait_ms: u64,
    },
    /// Validate a configuration without starting anything.
    Validate {
        /// The profile (TOML); it may also hold the host binding.
        config: PathBuf,
        /// The host binding (TOML with a [host] table), if not in CONFIG.
        #[arg(long)]
        host: Option<PathBuf>,
    },
    /// Show the running switch's state (a client of the daemon's API).
    Show {
        #[command(subcommand)]
        what: show::What,
        /// Print the API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Port operations.
    Port {
        #[command(subcommand)]
        op: manage::PortCmd,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Add or remove bindings (DHCP snooping's table) at runtime.
    Binding {
        #[command(subcommand)]
        op: BindingOp,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Zero every port's counters.
    ClearCounters {
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Validate a configuration, show its diff against the running one and apply it
    /// without interrupting traffic (state that is still valid is kept).
    Apply {
        /// The profile (TOML); it may also hold the host binding.
        file: PathBuf,
        /// The host binding, if not in FILE (default: the running one).
        #[arg(long)]
        host: Option<PathBuf>,
        /// Validate and show the diff only.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: client::ApiOpts,
        /// Store the profile in the cluster instead: every host applies it.
        #[command(flatten)]
        etcd: cluster::EtcdArgs,
        /// With --cluster: apply on this host first, and roll out only if it
        /// applied and is compliant.
        #[arg(long, requires = "cluster")]
        canary: Option<String>,
        /// With --cluster: how long to wait for the hosts (seconds).
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Golden profiles: export the running one.
    Profile {
        #[command(subcommand)]
        op: manage::ProfileOp,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Compliance: compare the running configuration with a golden profile or a
    /// hardening template. Exit 0 compliant, 1 drift, 2 error.
    Check {
        #[command(flatten)]
        against: check::CheckAgainst,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: client::ApiOpts,
        /// Every host of the cluster against the cluster's profile.
        #[command(flatten)]
        etcd: cluster::EtcdArgs,
    },
    /// The cluster (etcd): hosts, their health, profile generation and ports.
    Cluster {
        #[command(subcommand)]
        op: ClusterOp,
    },
    /// The caller's identity and role, as the daemon sees them.
    Whoami {
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Bearer tokens for the TCP+TLS API.
    Token {
        #[command(subcommand)]
        op: token::TokenCmd,
    },
    /// The hosts behind each VLAN and subnet: bindings, addresses seen by ARP, and
    /// guest MACs without a known address.
    Hosts {
        #[command(flatten)]
        args: hosts::HostsArgs,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Run a pcap file through a configuration offline: the verdict of every frame.
    Replay(replay::ReplayArgs),
    /// One frame through every stage of the pipeline, with each decision: offline
    /// against a configuration, or `--live` against the running switch.
    Trace {
        #[command(flatten)]
        args: trace::TraceArgs,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Capture the frames the running switch drops on a port's ingress to a pcap
    /// file (and their reasons to FILE.reasons).
    Capture {
        #[command(flatten)]
        args: client::capture::CaptureArgs,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Live per-port rates, like esxtop's network screen.
    Top {
        #[command(flatten)]
        args: top::TopArgs,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// The audit log: verify its hash chain, show records (through the daemon, or a file with --file).
    Audit {
        #[command(subcommand)]
        op: audit::AuditOp,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Take over a running Linux bridge's guests, one port at a time, hitlessly for
    /// the others (`--prepare` first; `--back` to roll back): docs/adopt.md.
    Adopt {
        #[command(flatten)]
        args: adopt::AdoptArgs,
        #[command(flatten)]
        api: client::ApiOpts,
    },
    /// Build a lab of network namespaces, run the switch on it, show what it blocks
    /// and why, and remove everything again. Needs root, the kernel and iproute2.
    Demo {
        /// Keep the lab and the switch running until Ctrl-C after the report.
        #[arg(long)]
        hold: bool,
    },
    /// Write the manual pages or the shell completions (for packagers).
    Generate {
        #[command(subcommand)]
        what: generate::What,
    },
    /// Traffic tools used inside lab namespaces by the demo and the tests.
    #[command(hide = true)]
    Lab {
        #[command(subcommand)]
        tool: labtools::Tool,
    },
}

#[derive(Subcommand, Debug)]
enum BindingOp {
    /// Add a binding that never expires (DAI and IP Source Guard accept it); it is
    /// committed to the binding store before the command returns.
    Add {
        /// The client's MAC (aa:bb:cc:dd:ee:ff).
        #[arg(long)]
        mac: String,
        /// The address bound to it: a unicast IPv4 or IPv6 host address.
        #[arg(long)]
        ip: String,
        /// The VLAN the binding is in (one the port carries).
        #[arg(long)]
        vlan: u16,
        /// The guest port the client is behind.
        #[arg(long)]
        port: String,
        /// Take the address from the binding that holds it (DHCP or API; never a
        /// static one). Without it such an address is refused, naming its holder.
        /// Audited, with the binding replaced.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a binding (DHCP or API; static bindings change with the configuration).
    Remove {
        /// The binding's VLAN.
        #[arg(long)]
        vlan: u16,
        /// The binding's address.
        #[arg(long)]
        ip: String,
    },
}

/// The interfaces of `compiled` that do not exist on this host and are not TAPs
/// the daemon creates, each located in the configuration: `validate` warns of them
/// (the daemon would refuse to start), as the daemon's own check words them.
fn missing_interfaces(
    config: &portcullis_control::Config,
    compiled: &portcullis_control::CompiledConfig,
) -> Vec<String> {
    compiled
        .interfaces
        .iter()
        .zip(&compiled.interface_keys)
        .zip(&compiled.create_tap)
        .filter(|((ifname, _), tap)| {
            // "": the overlay's endpoint on any interface.
            !**tap && !ifname.is_empty() && !portcullis_io::interface_exists(ifname)
        })
        .map(|((ifname, key), _)| {
            config
                .error_at(
                    key,
                    format!(
                        "interface {ifname:?} does not exist on this host: the daemon would not start with this configuration here"
                    ),
                )
                .to_string()
        })
        .collect()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Under systemd the journal stamps every line itself (it sets JOURNAL_STREAM
    // when standard error is connected to it): no second timestamp.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, journal) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Daemon {
            config,
            host,
            socket,
            state_dir,
            log_format,
            etcd,
            host_id,
            cluster_lease_secs,
            cluster_commit_wait_ms,
        } => {
            init_logging(log_format);
            let cluster =
                (!etcd.cluster.is_empty()).then(|| portcullis_daemon::cluster::ClusterOptions {
                    agent: portcullis_cluster::AgentOptions {
                        etcd: etcd.options(),
                        host: host_id,
                        lease_ttl: std::time::Duration::from_secs(cluster_lease_secs.max(2)),
                        commit_wait: std::time::Duration::from_millis(cluster_commit_wait_ms),
                        overlay_endpoint: None,
                    },
                });
            let opts = DaemonOptions {
                config,
                host,
                socket,
                state_dir,
                cluster,
            };
            match portcullis_daemon::start(&opts) {
                Ok(d) => {
                    d.wait_for_signal();
                    d.shutdown();
                    tracing::info!("stopped");
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("portcullis daemon did not start:\n{e}")),
            }
        }
        Cmd::Validate { config, host } => {
            portcullis_control::load_compiled(&config, host.as_deref())
                .map(|(loaded, c)| {
                    // Valid as a configuration; but on this host the daemon would
                    // refuse an interface that is not there (a TAP it creates aside).
                    for w in missing_interfaces(&loaded, &c) {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: valid ({} ports)", config.display(), c.spec.ports.len())
                })
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        Cmd::Show { what, json, api } => show::run(what, json, &api),
        Cmd::Port { op, api } => manage::port(op, &api),
        Cmd::Binding {
            op:
                BindingOp::Add {
                    mac,
                    ip,
                    vlan,
                    port,
                    replace,
                },
            api,
        } => {
            let mut body = serde_json::json!({ "mac": mac, "ip": ip, "vlan": vlan, "port": port });
            if replace {
                body["replace"] = true.into();
            }
            api.call(portcullis_api::Method::POST, "/v1/bindings", Some(body))
                .map(|_| println!("binding {ip} ({mac}) on {port}, VLAN {vlan}: added"))
        }
        Cmd::Binding {
            op: BindingOp::Remove { vlan, ip },
            api,
        } => api
            .call(
                portcullis_api::Method::DELETE,
                &format!("/v1/bindings/{vlan}/{ip}"),
                None,
            )
            .map(|_| println!("binding {ip} in VLAN {vlan}: removed")),
        Cmd::ClearCounters { api } => api
            .call(portcullis_api::Method::POST, "/v1/counters/clear", None)
            .map(|_| println!("counters cleared")),
        Cmd::Apply {
            file,
            etcd,
            canary,
            wait_secs,
            ..
        } if !etcd.cluster.is_empty() => {
            return cluster::apply(
                &file,
                canary.as_deref(),
                std::time::Duration::from_secs(wait_secs),
                &etcd,
            );
        }
        Cmd::Apply {
            file,
            host,
            dry_run,
            api,
            ..
        } => manage::apply(&file, host.as_deref(), dry_run, &api),
        Cmd::Profile { op, api } => manage::profile(op, &api),
        Cmd::Check { json, etcd, .. } if !etcd.cluster.is_empty() => {
            return cluster::check(json, &etcd);
        }
        Cmd::Check {
            against, json, api, ..
        } => return check::check(&against, json, &api),
        Cmd::Cluster {
            op: ClusterOp::Status { json, etcd },
        } => return cluster::status(json, &etcd),
        Cmd::Whoami { api } => api
            .call(portcullis_api::Method::GET, "/v1/whoami", None)
            .map(|v| {
                println!(
                    "{} ({}) via {}",
                    v["user"].as_str().unwrap_or("?"),
                    v["role"].as_str().unwrap_or("no role"),
                    v["source"].as_str().unwrap_or("?")
                )
            }),
        Cmd::Token { op } => {
            return token::run(op).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
        Cmd::Hosts { args, api } => hosts::run(&args, &api),
        Cmd::Replay(a) => {
            return replay::run(&a).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
        Cmd::Trace { args, api } => {
            let r = if args.live {
                trace_live(&args, &api)
            } else {
                trace::run(&args)
            };
            return r.unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
        Cmd::Top { args, api } => {
            return top::run(&api.socket, &args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
        Cmd::Capture { args, api } => capture::run(&args, &api),
        Cmd::Audit { op, api } => match op.file() {
            Some(_) => audit_file::run(op),
            None => audit::run(op, &api),
        },
        Cmd::Adopt { args, api } => adopt::run(&args, &api),
        Cmd::Demo { hold } => demo::run(hold),
        Cmd::Lab { tool } => labtools::run(tool),
        Cmd::Generate { what } => generate::run::<Cli>(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis trace --live`: the frame built from `--hex` or `--frame` (the
/// language of `trace.rs`), then traced by the daemon (`client::trace_live`).
fn trace_live(args: &trace::TraceArgs, api: &client::ApiOpts) -> anyhow::Result<ExitCode> {
    let frame = match (&args.hex, &args.frame) {
        (Some(h), _) => trace::parse_hex(h).map_err(|e| anyhow::anyhow!("--hex: {e}")),
        (_, Some(d)) => trace::build_frame(d).map_err(|e| anyhow::anyhow!("--frame: {e}")),
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
    client::trace_live::run(
        &args.port,
        &frame,
        &replay::describe_frame(&frame),
        args.json,
        api,
    )
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every argument and option of every command, as `portcullis … --help` shows it,
    /// has help text (clap's own `--help`/`--version` aside).
    #[test]
    fn every_argument_of_every_command_says_what_it_is() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cli = Cli::command();
        let mut missing = Vec::new();
        walk(&cli, "portcullis", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
