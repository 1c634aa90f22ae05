//! Serving HTTP/1.1 connections on the daemon's listeners (the Unix socket, TCP with
//! TLS, the metrics endpoint) within limits: at most [`Limits::max_connections`]
//! at once, a deadline for each request's headers ([`Limits::header_timeout`]) and
//! for a connection with no request in flight ([`Limits::idle_timeout`]).
//!
//! Invariants: a full listener keeps answering. When a new connection arrives at
//! the cap, the connection idle the longest (no request in flight) is closed to
//! make room; only when every connection has a request in flight is the new one
//! closed instead. Connections that are closing still hold a descriptor, so at
//! most [`CLOSING_SLACK`] of them are allowed beyond the cap. Every connection is
//! one task; a failed one costs itself, never the listener. The file-descriptor
//! budget the caps are sized from is [`caps`]'s.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The caller's transport: a Unix-socket peer (SO_PEERCRED) or a TCP peer (TLS).
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
    /// Set for callers over TCP+TLS (who then authenticate with a bearer token).
    pub tcp: Option<std::net::SocketAddr>,
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        let cred = stream.io().peer_cred().ok();
        Peer {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
            pid: cred.and_then(|c| c.pid()),
            tcp: None,
        }
    }
}

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open with no request in flight.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests after shutdown (or
/// after being chosen to make room).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections that are closing, allowed beyond the cap.
pub const CLOSING_SLACK: usize = 64;

/// Descriptors kept back from the connection caps: ports added by an apply,
/// the state files, the syslog socket, captures, the runtime's own.
pub const RESERVED_FDS: u64 = 256;
/// The metrics endpoint's cap (Prometheus scrapes with one connection).
pub const METRICS_CONNECTIONS: usize = 16;
/// The Unix socket's cap, whatever the descriptor limit.
pub const MAX_UNIX_CONNECTIONS: usize = 4096;
/// The TLS listener's cap, whatever the descriptor limit.
pub const MAX_TLS_CONNECTIONS: usize = 1024;
/// The least cap of each listener (below it the daemon would be unusable; with
/// so few descriptors the start fails elsewhere first).
pub const MIN_CONNECTIONS: usize = 8;

/// A listener's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// `max_connections` with the default timeouts.
    pub fn with_cap(max_connections: usize) -> Limits {
        Limits {
            max_connections: max_connections.max(1),
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// The caps of the Unix socket and the TLS listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub unix: usize,
    pub tls: usize,
}

/// Sizes the caps from what is left of the descriptor limit `soft` with `open`
/// descriptors open: [`RESERVED_FDS`] and the metrics endpoint's kept back, each
/// cap with its [`CLOSING_SLACK`], three quarters of the rest to the Unix socket
/// and a quarter to TLS (kept for it even while TLS is off: an apply may turn it
/// on), within [`MIN_CONNECTIONS`] and the maxima.
pub fn caps(soft: u64, open: u64) -> Caps {
    let spare = soft
        .saturating_sub(open)
        .saturating_sub(RESERVED_FDS)
        .saturating_sub((METRICS_CONNECTIONS + CLOSING_SLACK) as u64)
        .saturating_sub(2 * CLOSING_SLACK as u64);
    let spare = usize::try_from(spare).unwrap_or(usize::MAX);
    let (unix, tls_share) = (spare / 4 * 3, spare / 4);
    Caps {
        unix: unix.clamp(MIN_CONNECTIONS, MAX_UNIX_CONNECTIONS),
        tls: tls_share.clamp(MIN_CONNECTIONS, MAX_TLS_CONNECTIONS),
    }
}

/// Raises the soft limit of open files to the hard one (a service manager's
/// default soft limit of 1024 is too low for a daemon that serves connections);
/// the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid storage passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the rlimit passed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "raised the open-files soft limit to the hard limit"
            );
            return lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// Descriptors this process has open now (`/proc/self/fd`).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count() as u64)
}

/// What a listener accepts.
pub enum Listener {
    Unix(tokio::net::UnixListener),
    Tls(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
    /// Plain HTTP over TCP (the metrics endpoint).
    Tcp(tokio::net::TcpListener),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Listener {
    fn name(&self) -> &'static str {
        match self {
            Listener::Unix(_) => "API on the Unix socket",
            Listener::Tls(..) => "API over TLS",
            Listener::Tcp(_) => "metrics endpoint",
        }
    }
}

/// An accepted connection, before TLS.
enum Accepted {
    Unix(tokio::net::UnixStream, Peer),
    Tcp(tokio::net::TcpStream, Peer),
}

/// One connection as the accept loop sees it.
#[derive(Debug)]
struct Conn {
    in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
    evict: Notify,
}

impl Conn {
    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        self.last_active.lock().ok().map(|t| *t)
    }
}

/// Decrements a connection's requests in flight when its request is done (or
/// dropped).
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then
/// stops accepting and gives open connections [`SHUTDOWN_GRACE`] to finish. Each
/// request carries `ConnectInfo<Peer>`: the Unix peer's credentials, or the TCP
/// peer's address.
pub async fn serve(
    listener: Listener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let name = listener.name();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<u64> = JoinSet::new();
    let mut open: HashMap<u64, Arc<Conn>> = HashMap::new();
    let mut next_id = 0u64;
    let mut refused = 0u64;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done {
                    open.remove(&id);
                }
                continue;
            }
            a = accept(&listener) => a,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait, then go on.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.len() >= limits.max_connections && !evict_idlest(&mut open) {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    listener = name,
                    limit = limits.max_connections,
                    refused,
                    "every connection has a request in flight; closing a new one"
                );
            }
            continue;
        }
        if tasks.len() >= limits.max_connections + CLOSING_SLACK {
            refused += 1;
            continue;
        }
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            evict: Notify::new(),
        });
        let id = next_id;
        next_id += 1;
        open.insert(id, conn.clone());
        let (app, stop) = (app.clone(), stop_rx.clone());
        let tls = match &listener {
            Listener::Tls(_, acceptor) => Some(acceptor.clone()),
            _ => None,
        };
        tasks.spawn(async move {
            match (accepted, tls) {
                (Accepted::Unix(s, peer), _) => {
                    serve_connection(s, peer, app, conn, limits, stop).await;
                }
                (Accepted::Tcp(s, peer), None) => {
                    serve_connection(s, peer, app, conn, limits, stop).await;
                }
                (Accepted::Tcp(s, peer), Some(acceptor)) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s));
                    let tls = tokio::select! {
                        r = handshake => r,
                        () = conn.evict.notified() => return id,
                    };
                    match tls {
                        Ok(Ok(tls)) => serve_connection(tls, peer, app, conn, limits, stop).await,
                        Ok(Err(e)) => {
                            let remote = peer.tcp.map(tracing::field::display);
                            tracing::warn!(remote, error = %e, "API over TLS: handshake failed");
                        }
                        Err(_) => {
                            let remote = peer.tcp.map(tracing::field::display);
                            tracing::warn!(remote, "API over TLS: handshake timed out");
                        }
                    }
                }
            }
            id
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            open = tasks.len(),
            "connections still open after the shutdown grace; closing them"
        );
    }
    // Dropping the set aborts what is left.
}

/// Closes the connection idle the longest to make room; `false` when every
/// connection has a request in flight.
fn evict_idlest(open: &mut HashMap<u64, Arc<Conn>>) -> bool {
    let idlest = open
        .iter()
        .filter_map(|(id, c)| c.idle_since().map(|t| (t, *id)))
        .min();
    let Some((_, id)) = idlest else {
        return false;
    };
    if let Some(c) = open.remove(&id) {
        c.evict.notify_one();
    }
    true
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            let cred = s.peer_cred().ok();
            let peer = Peer {
                uid: cred.map(|c| c.uid()),
                gid: cred.map(|c| c.gid()),
                pid: cred.and_then(|c| c.pid()),
                tcp: None,
            };
            Ok(Accepted::Unix(s, peer))
        }
        Listener::Tls(l, _) | Listener::Tcp(l) => {
            let (s, remote) = l.accept().await?;
            let peer = Peer {
                tcp: Some(remote),
                ..Peer::default()
            };
            Ok(Accepted::Tcp(s, peer))
        }
    }
}

/// HTTP/1.1 on one connection until the client closes, `stop` turns true, the
/// accept loop evicts it, or it has been idle for `limits.idle_timeout`
/// (graceful: a request in progress finishes).
async fn serve_connection<IO>(
    io: IO,
    peer: Peer,
    app: Router,
    conn: Arc<Conn>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracked = conn.clone();
    let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tracked.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(tracked.clone());
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await;
            drop(guard);
            resp
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let served = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let mut served = std::pin::pin!(served);
    loop {
        let deadline = match conn.idle_since() {
            Some(t) => t + limits.idle_timeout,
            None => Instant::now() + limits.idle_timeout,
        };
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    let remote = peer.tcp.map(tracing::field::display);
                    tracing::debug!(uid = peer.uid, pid = peer.pid, remote, error = %e, "API connection ended with an error");
                }
                return;
            }
            () = stopped(&mut stop) => break,
            () = conn.evict.notified() => break,
            () = tokio::time::sleep_until(deadline.into()) => {
                if conn.idle_since().is_some_and(|t| t.elapsed() >= limits.idle_timeout) {
                    break;
                }
            }
        }
    }
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, served.as_mut()).await;
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_the_reserve_and_share_the_rest() {
        // A service manager's default: 1024, about 30 open at start.
        let c = caps(1024, 30);
        let used = c.unix + c.tls + 3 * CLOSING_SLACK + METRICS_CONNECTIONS;
        assert!(used + 30 + RESERVED_FDS as usize <= 1024, "{c:?}");
        assert!(
            used + 30 + RESERVED_FDS as usize >= 1020,
            "nearly all used: {c:?}"
        );
        assert!(c.unix >= 3 * c.tls && c.tls >= MIN_CONNECTIONS, "{c:?}");
        // A large limit: the maxima.
        assert_eq!(
            caps(1 << 20, 30),
            Caps {
                unix: MAX_UNIX_CONNECTIONS,
                tls: MAX_TLS_CONNECTIONS
            }
        );
        // A tiny one: the minima (the daemon will fail elsewhere first).
        assert_eq!(
            caps(64, 30),
            Caps {
                unix: MIN_CONNECTIONS,
                tls: MIN_CONNECTIONS
            }
        );
    }

    #[test]
    fn the_idlest_connection_makes_room_never_a_busy_one() {
        let t0 = Instant::now();
        let conn = |at: Instant, busy: usize| {
            Arc::new(Conn {
                in_flight: AtomicUsize::new(busy),
                last_active: Mutex::new(at),
                evict: Notify::new(),
            })
        };
        let mut open = HashMap::new();
        open.insert(1, conn(t0, 1)); // oldest, but busy
        open.insert(2, conn(t0 + Duration::from_secs(1), 0));
        open.insert(3, conn(t0 + Duration::from_secs(2), 0));
        assert!(evict_idlest(&mut open));
        assert!(!open.contains_key(&2) && open.contains_key(&1));
        assert!(evict_idlest(&mut open));
        assert!(!evict_idlest(&mut open), "only a busy one is left");
        assert_eq!(open.len(), 1);
    }
}
