//! `portcullis-libvirt-hook`: libvirt's QEMU hook (`/etc/libvirt/hooks/qemu`) for
//! Portcullis. libvirt runs it as `qemu DOMAIN OPERATION SUB-OPERATION EXTRA` with
//! the domain XML on stdin; it puts the domain's `<interface type='ethernet'>`
//! TAPs and `<interface type='vhostuser'>` sockets on the switch as runtime ports
//! before QEMU starts, and removes them when libvirt releases the domain
//! (docs/libvirt.md).
//!
//! Invariants: a pure API client with no state of its own (the switch keeps the
//! ports); every API call is bounded by `--timeout` in all, so libvirt is never
//! held long; a port that cannot be added fails the hook (non-zero exit, the
//! reason on stderr), which makes libvirt refuse to start the domain; nothing is
//! ever printed on stdout (for `migrate` and `restore` libvirt would take it as a
//! new domain XML).

mod domain;
mod hook;

use clap::Parser;
use hook::{Action, Existing, Switch};
use portcullis_api::client::{ClientError, Endpoint, call_endpoint};
use portcullis_api::endpoints::{NewPort, PortChangeAnswer};
use portcullis_api::{DEFAULT_SOCKET, Method};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The most domain XML read from stdin.
const MAX_XML: u64 = 16 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "portcullis-libvirt-hook",
    version,
    about = "libvirt QEMU hook: puts a domain's ethernet and vhostuser interfaces on the Portcullis switch",
    long_about = "libvirt QEMU hook: puts a domain's <interface type='ethernet'> TAPs and <interface type='vhostuser'> sockets on the Portcullis switch as runtime ports before QEMU starts (prepare, start, reconnect, attach) and removes them when libvirt releases the domain (release). Install it as /etc/libvirt/hooks/qemu, or call it from that script with \"$@\" and the domain XML on stdin. See docs/libvirt.md."
)]
struct Args {
    /// The daemon's Unix socket (libvirt gives hooks a clean environment: set it
    /// here, in the /etc/libvirt/hooks/qemu wrapper, rather than in libvirtd's
    /// environment).
    #[arg(long, env = "PORTCULLIS_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Reach the daemon over TCP+TLS instead: HOST:PORT.
    #[arg(long, env = "PORTCULLIS_API")]
    api: Option<String>,
    /// The CA certificate (PEM) that signed the daemon's TLS certificate.
    #[arg(long, env = "PORTCULLIS_CA")]
    ca: Option<PathBuf>,
    /// A file holding an operator's bearer token (for --api).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Seconds all the hook's API calls may take together before it gives up
    /// (and, before a start, fails it).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
    /// The domain's name (libvirt's first argument).
    #[arg(allow_hyphen_values = true)]
    domain: String,
    /// The operation: prepare, start, started, stopped, release, migrate,
    /// restore, reconnect, attach.
    operation: String,
    /// The sub-operation: begin or end.
    sub_operation: String,
    /// libvirt's extra argument (usually `-`).
    #[arg(allow_hyphen_values = true, num_args = 0..)]
    extra: Vec<String>,
}

/// The daemon's API, every call bounded by one deadline.
struct Api {
    endpoint: Endpoint,
    rt: tokio::runtime::Runtime,
    deadline: Instant,
    timeout: Duration,
}

impl Api {
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.rt
            .block_on(async {
                tokio::time::timeout(left, call_endpoint(&self.endpoint, method, path, body)).await
            })
            .map_err(|_| Failure::Timeout(self.timeout))?
            .map_err(Failure::Api)
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the switch did not answer within {}s (--timeout)", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Api(ClientError),
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected answer from the switch: {e}"))
}

impl Switch for Api {
    fn port(&self, name: &str) -> Result<Option<Existing>, String> {
        match self.call(Method::GET, &format!("/v1/ports/{name}"), None) {
            Ok(v) => Ok(Some(Existing {
                runtime: v["runtime"].as_bool().unwrap_or(false),
                domain_uuid: v["owner"]["domain_uuid"].as_str().map(str::to_string),
            })),
            Err(Failure::Api(ClientError::Api { status, .. })) if status.as_u16() == 404 => {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn owned_by(&self, uuid: &str) -> Result<Vec<String>, String> {
        let ports = self
            .call(Method::GET, "/v1/ports", None)
            .map_err(|e| e.to_string())?;
        let ports = ports
            .as_array()
            .ok_or("unexpected answer from the switch: GET /v1/ports is not a list")?;
        Ok(ports
            .iter()
            .filter(|p| p["runtime"].as_bool() == Some(true))
            .filter(|p| p["owner"]["domain_uuid"].as_str() == Some(uuid))
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect())
    }

    fn add(&self, name: &str, port: &NewPort) -> Result<PortChangeAnswer, String> {
        let body = serde_json::to_value(port).map_err(|e| e.to_string())?;
        decode(
            self.call(Method::POST, &format!("/v1/ports/{name}"), Some(body))
                .map_err(|e| e.to_string())?,
        )
    }

    fn remove(&self, name: &str) -> Result<PortChangeAnswer, String> {
        decode(
            self.call(
                Method::DELETE,
                &format!("/v1/ports/{name}?if_exists=true"),
                None,
            )
            .map_err(|e| e.to_string())?,
        )
    }
}

/// One hook call: `input` is the domain XML libvirt writes on stdin (read only
/// when the operation needs it). The lines to log, or why the call fails.
fn run(args: &Args, input: impl Read) -> Result<Vec<String>, String> {
    let action = hook::action(&args.operation, &args.sub_operation);
    if action == Action::Nothing {
        return Ok(Vec::new());
    }
    let mut xml = String::new();
    input
        .take(MAX_XML)
        .read_to_string(&mut xml)
        .map_err(|e| format!("cannot read the domain XML on stdin: {e}"))?;
    let in_domain = |e: domain::PlanError| format!("domain {}: {e}", args.domain);
    // `release` needs only the domain's identity: its XML no longer names the
    // TAPs, and the ports' owner finds them all, vhost-user ones included. The
    // others need the whole plan (and `migrate`/`restore` only that).
    let (plan, uuid) = if action == Action::Release {
        let id = domain::identity(&xml).map_err(in_domain)?;
        if !id.ours {
            return Ok(Vec::new());
        }
        (None, id.uuid)
    } else {
        let plan = domain::plan(&xml).map_err(in_domain)?;
        if plan.ports.is_empty() || action == Action::Check {
            return Ok(Vec::new());
        }
        let uuid = plan.uuid.clone();
        (Some(plan), uuid)
    };
    let endpoint = portcullis_api::ApiOpts {
        socket: args.socket.clone(),
        api: args.api.clone(),
        ca: args.ca.clone(),
        token_file: args.token_file.clone(),
    }
    .endpoint()
    .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(args.timeout);
    let api = Api {
        endpoint,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the client's runtime: {e}"))?,
        deadline: Instant::now() + timeout,
        timeout,
    };
    let report = match plan {
        Some(plan) => hook::ensure(&api, &plan)?,
        None => hook::release(&api, &uuid)?,
    };
    Ok(report.lines)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let what = format!("portcullis-libvirt-hook {} {}", args.domain, args.operation);
    match run(&args, std::io::stdin()) {
        Ok(lines) => {
            for l in lines {
                eprintln!("{what}: {l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREPARE: &str = include_str!("testdata/prepare.xml");
    const RELEASE: &str = include_str!("testdata/release.xml");

    fn args(socket: &std::path::Path, op: &str, sub: &str, timeout: u64) -> Args {
        Args::try_parse_from([
            "portcullis-libvirt-hook",
            "--socket",
            socket.to_str().unwrap(),
            "--timeout",
            &timeout.to_string(),
            "pclexp",
            op,
            sub,
            "-",
        ])
        .unwrap()
    }

    #[test]
    fn the_hook_is_an_api_client_only() {
        let sources = [
            include_str!("main.rs"),
            include_str!("domain.rs"),
            include_str!("hook.rs"),
        ];
        for krate in ["daemon", "control", "dataplane", "io"] {
            let name = format!("portcullis_{krate}");
            assert!(
                sources.iter().all(|s| !s.contains(&name)),
                "the hook names {name}: it must use portcullis-api only"
            );
        }
    }

    #[test]
    fn libvirts_arguments_parse() {
        let a = Args::try_parse_from(["qemu", "-odd-name", "prepare", "begin", "-"]).unwrap();
        assert_eq!(
            (
                a.domain.as_str(),
                a.operation.as_str(),
                a.sub_operation.as_str()
            ),
            ("-odd-name", "prepare", "begin")
        );
        assert_eq!(a.extra, vec!["-"]);
        assert_eq!(a.timeout, 10);
        assert!(Args::try_parse_from(["qemu", "vm1", "prepare"]).is_err());
        assert!(Args::try_parse_from(["qemu", "--timeout", "0", "vm1", "a", "b"]).is_err());
    }

    #[test]
    fn without_a_switch_a_start_fails_and_unrelated_calls_do_not_ask() {
        let nowhere = std::path::Path::new("/nonexistent/portcullis.sock");
        let e = run(&args(nowhere, "prepare", "begin", 2), PREPARE.as_bytes()).unwrap_err();
        assert!(e.contains("no daemon listens at /nonexistent"), "{e}");
        // Operations the hook has nothing to do for never reach the API (nor read
        // stdin); neither do domains without our metadata, nor migrate's check.
        assert_eq!(
            run(&args(nowhere, "started", "begin", 2), &b"not xml"[..]),
            Ok(vec![])
        );
        let foreign = PREPARE.replace("https://portcullis.dev/libvirt/1", "urn:other");
        assert_eq!(
            run(&args(nowhere, "prepare", "begin", 2), foreign.as_bytes()),
            Ok(vec![])
        );
        let foreign = RELEASE.replace("https://portcullis.dev/libvirt/1", "urn:other");
        assert_eq!(
            run(&args(nowhere, "release", "end", 2), foreign.as_bytes()),
            Ok(vec![])
        );
        assert_eq!(
            run(&args(nowhere, "migrate", "begin", 2), PREPARE.as_bytes()),
            Ok(vec![])
        );
        let e = run(&args(nowhere, "prepare", "begin", 2), &b"<domain"[..]).unwrap_err();
        assert!(e.starts_with("domain pclexp: the domain XML"), "{e}");
    }

    #[test]
    fn a_switch_that_does_not_answer_fails_the_start_within_the_timeout() {
        let dir = std::env::temp_dir().join(format!("pcl-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("mute.sock");
        let _ = std::fs::remove_file(&sock);
        // Connections complete in the backlog; nobody ever answers.
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = Instant::now();
        let e = run(&args(&sock, "prepare", "begin", 1), PREPARE.as_bytes()).unwrap_err();
        let took = t.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("did not answer within 1s"), "{e}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}
