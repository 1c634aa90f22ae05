//! The listeners' limits (`conns::serve`) on a Unix socket in a temporary
//! directory, with short deadlines: a client that does not finish its request's
//! headers is cut off, so is an idle keep-alive connection; at the cap the
//! connection idle the longest makes room for a new one, and when every connection
//! has a request in flight the new one is closed instead. No root needed.

use axum::Router;
use axum::routing::get;
use portcullis_daemon::conns::{Limits, Listener, serve};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CAP: usize = 4;
const HEADER: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_millis(600);

struct Server {
    socket: PathBuf,
    release: Arc<tokio::sync::Semaphore>,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `/fast` answers at once; `/slow` waits for a permit of `release`.
fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let r = release.clone();
    let app = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(move || {
                let r = r.clone();
                async move {
                    let _ = r.acquire().await.map(|p| p.forget());
                    "slow"
                }
            }),
        );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = {
        let _g = runtime.enter();
        tokio::net::UnixListener::bind(&socket).unwrap()
    };
    let limits = Limits {
        max_connections: CAP,
        header_timeout: HEADER,
        idle_timeout: IDLE,
    };
    runtime.spawn(serve(Listener::Unix(listener), app, limits, async move {
        let _ = stopped.await;
    }));
    Server {
        socket,
        release,
        runtime,
        stop: Some(stop),
        _dir: dir,
    }
}

fn connect(s: &Server) -> UnixStream {
    let c = UnixStream::connect(&s.socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Sends one keep-alive GET of `path`.
fn send(c: &mut UnixStream, path: &str) {
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
}

/// Reads one answer (the tests' bodies are short): its text.
fn answer(c: &mut UnixStream) -> String {
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).expect("an answer, not a timeout");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// Waits (at most 5 s) for the server to close `c`; how long that took.
fn closed(c: &mut UnixStream) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return t.elapsed(),
            Err(e) => panic!("not closed within 5 s: {e}"),
        }
    }
}

#[test]
fn a_request_whose_headers_never_end_is_cut_off() {
    let s = start();
    let mut c = connect(&s);
    c.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n").unwrap(); // no blank line
    let took = closed(&mut c);
    assert!(took >= HEADER / 2, "closed after {took:?}");
    // The server goes on.
    let mut c = connect(&s);
    send(&mut c, "/fast");
    assert!(answer(&mut c).starts_with("HTTP/1.1 200"));
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let s = start();
    let mut c = connect(&s);
    send(&mut c, "/fast");
    assert!(answer(&mut c).starts_with("HTTP/1.1 200"));
    let took = closed(&mut c);
    assert!(took >= HEADER / 2, "closed after {took:?}");
}

#[test]
fn at_the_cap_the_idlest_connection_makes_room() {
    let s = start();
    let mut idle: Vec<UnixStream> = (0..CAP).map(|_| connect(&s)).collect();
    // Each has answered once (so each is a served, idle connection), oldest first.
    for c in &mut idle {
        send(c, "/fast");
        assert!(answer(c).starts_with("HTTP/1.1 200"));
    }
    let mut new = connect(&s);
    send(&mut new, "/fast");
    assert!(
        answer(&mut new).starts_with("HTTP/1.1 200"),
        "a new connection is served at the cap"
    );
    closed(&mut idle[0]);
    // The others are still open and served.
    send(&mut idle[CAP - 1], "/fast");
    assert!(answer(&mut idle[CAP - 1]).starts_with("HTTP/1.1 200"));
}

#[test]
fn when_every_connection_is_busy_a_new_one_is_closed() {
    let s = start();
    let mut busy: Vec<UnixStream> = (0..CAP).map(|_| connect(&s)).collect();
    for c in &mut busy {
        send(c, "/slow");
    }
    // Let the server take the requests in.
    std::thread::sleep(Duration::from_millis(100));
    let mut new = connect(&s);
    send(&mut new, "/fast");
    closed(&mut new);
    // The busy requests complete once released.
    s.release.add_permits(CAP);
    for c in &mut busy {
        let a = answer(c);
        assert!(a.starts_with("HTTP/1.1 200") && a.contains("slow"), "{a}");
    }
    let _ = &s.runtime;
}
