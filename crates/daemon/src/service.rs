//! The daemon as a service (systemd): the readiness protocol (`sd_notify(3)`:
//! `READY=1` once every port is open and the API serves, `RELOADING=1` … `READY=1`
//! around a reload, `STOPPING=1`), and the reload itself — SIGHUP applies the
//! startup files through the API, as `portcullis apply` would: one path for
//! reconfiguration, role-checked and audited (the caller is the daemon's own
//! user, from the process itself). A reload that applies makes the files it read
//! the startup files the saved running configuration derives from
//! ([`StartupReload`]), so what is applied after it survives a restart on them.
//!
//! Invariants: without `NOTIFY_SOCKET` nothing is sent and nothing fails; a
//! notification that cannot be sent is logged, never fatal; a reload that is
//! refused (a bad file) changes nothing and says why in the log and the audit log.

use crate::DaemonOptions;
use crate::conns::Peer;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use std::os::unix::net::UnixDatagram;
use tower::ServiceExt;

/// Sends `state` (e.g. `READY=1`) to the service manager at `$NOTIFY_SOCKET`, if
/// the daemon runs under one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(std::path::Path::new(&path), state) {
        tracing::warn!(error = %e, state, "cannot notify the service manager");
    }
}

/// Sends `state` as one datagram to the notification socket `path` (a path, or an
/// abstract socket written `@name`).
pub fn notify_to(path: &std::path::Path, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_os_str().as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
        None => std::os::unix::net::SocketAddr::from_pathname(path)?,
    };
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// `RELOADING=1` with the monotonic time systemd asks for (`Type=notify-reload`).
fn reloading() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; CLOCK_MONOTONIC exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// The daemon itself as an API caller (its own user, from its own process): what
/// a reload and the cluster agent call the API as.
pub(crate) fn daemon_peer() -> Peer {
    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Peer {
        uid: Some(uid),
        gid: Some(gid),
        pid: Some(std::process::id() as i32),
        tcp: None,
    }
}

/// Marks an apply as the reload of the startup files whose fingerprint it holds
/// (`running_config::fingerprint_texts`): the applied configuration then derives
/// from those files, and is saved so — a later restart on the same files comes back
/// with it and with whatever is applied after it. Only the daemon itself sets it
/// (a request extension: no caller of the API can).
#[derive(Clone, Debug)]
pub struct StartupReload(pub String);

/// Applies the startup files (`opts.config`, `opts.host`) through the API `app`,
/// as the daemon's own user: what SIGHUP (`systemctl reload`) does. The outcome is
/// logged; the apply is audited like any other.
pub async fn reload(app: axum::Router, opts: &DaemonOptions) {
    notify(&reloading());
    let (body, startup) = match (
        std::fs::read_to_string(&opts.config),
        opts.host
            .as_deref()
            .map(std::fs::read_to_string)
            .transpose(),
    ) {
        (Ok(profile), Ok(host)) => {
            let startup = StartupReload(crate::running_config::fingerprint_texts(
                &profile,
                host.as_deref(),
            ));
            let source = |p: &std::path::Path, text: String| {
                let name = p.display().to_string();
                serde_json::json!({ "name": name, "text": text })
            };
            let mut b = serde_json::json!({ "profile": source(&opts.config, profile) });
            if let (Some(p), Some(h)) = (opts.host.as_deref(), host) {
                b["host"] = source(p, h);
            }
            (b, startup)
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "reload: cannot read the configuration files; nothing changed");
            notify("READY=1");
            return;
        }
    };
    let peer = daemon_peer();
    let mut req = match Request::builder()
        .method(Method::POST)
        .uri("/v1/config/apply")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reload: cannot build the request");
            notify("READY=1");
            return;
        }
    };
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut().insert(startup);
    match app.oneshot(req).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
                .await
                .unwrap_or_default();
            let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if status.is_success() {
                let changes = answer["changes"].as_array().map_or(0, Vec::len);
                tracing::info!(
                    applied = answer["applied"].as_bool().unwrap_or(false),
                    changes,
                    "reload (SIGHUP): the configuration files applied"
                );
            } else {
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                tracing::error!(
                    status = status.as_u16(),
                    message,
                    "reload (SIGHUP) refused; nothing changed"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "reload (SIGHUP) failed"),
    }
    notify("READY=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_one_datagram_to_a_path_or_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("pcl-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(&path, "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("pcl-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::path::Path::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn reloading_carries_the_monotonic_time() {
        let r = reloading();
        let usec: u64 = r
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
    }
}
