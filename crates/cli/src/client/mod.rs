//! The client commands: `show`, `top`, `hosts`, `apply`/`profile export`/`port …`,
//! `trace --live`, `capture` and `audit` through the daemon's API.
//!
//! Invariant (the boundary): these modules import nothing but `portcullis_api`,
//! std, each other and UI crates (clap, anyhow, serde_json, ratatui, crossterm,
//! tokio as the client's runtime) — never the daemon, the data plane, the
//! configuration library, io or the lab. What needs those stays outside `client/`
//! and calls in: `daemon`/`demo` (`main.rs`, `demo.rs`), offline `replay` and
//! `trace` (`replay.rs`, `trace.rs`, which also builds `--live`'s frame),
//! `check` (`check.rs`: compliance is judged by `portcullis-control`),
//! `token new` (`token.rs`), `audit --file` (`audit_file.rs`) and the pcap files
//! of `capture` (`capture.rs`).

pub mod api_opts;
pub mod audit;
pub mod capture;
pub mod hosts;
pub mod manage;
pub mod show;
pub mod top;
pub mod trace_live;

pub use api_opts::ApiOpts;

#[cfg(test)]
mod tests {
    /// The boundary above, checked: no file of `client/` names a server-side crate
    /// or a module of this crate outside `client/`.
    #[test]
    fn client_modules_use_only_the_api_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/client");
        let forbidden = [
            "portcullis_daemon",
            "portcullis_dataplane",
            "portcullis_control",
            "portcullis_io",
            "portcullis_lab",
            "hyper::",
            "axum",
            "redb",
        ];
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            files += 1;
            // This test names what it forbids: the scan stops at it.
            let lines = text
                .lines()
                .take_while(|l| !l.contains("The boundary above, checked"));
            for (n, line) in lines.enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for name in forbidden {
                    assert!(
                        !code.contains(name),
                        "{}:{}: {name} in a client module: {line}",
                        path.display(),
                        n + 1
                    );
                }
                if let Some(at) = code.find("crate::") {
                    assert!(
                        code[at..].starts_with("crate::client"),
                        "{}:{}: a module outside client/: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
        assert!(files >= 8, "{files} files in {}", dir.display());
    }
}
