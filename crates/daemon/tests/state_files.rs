//! The state directory and its files are root's alone, as documented (docs/ports.md):
//! a new state directory is made 0700, its redb files and audit log 0600 (also
//! ones an older version left 0644), and a world-writable state directory is
//! refused before anything is opened in it. Runs on in-memory ports.

use portcullis_daemon::{DaemonError, start_in_memory};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const CONFIG: &str = r#"
[switch]
name = "files"

[[port_group]]
name = "web"
vlan = 10

[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
"#;

fn config() -> portcullis_control::Config {
    portcullis_control::parse_str(CONFIG, "files.toml", None).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

const FILES: [&str; 3] = ["state.redb", "bindings.redb", "audit.log"];

#[test]
fn a_new_state_directory_is_0700_and_its_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lib").join("portcullis");
    let daemon = start_in_memory(config(), &dir).expect("starts");
    assert_eq!(mode(&dir), 0o700, "the state directory");
    assert_eq!(mode(&tmp.path().join("lib")), 0o700, "a parent it created");
    for f in FILES {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    drop(daemon);
}

#[test]
fn files_an_older_version_left_readable_are_made_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    drop(start_in_memory(config(), &dir).expect("first start"));
    for f in FILES {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let daemon = start_in_memory(config(), &dir).expect("second start");
    for f in FILES {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    drop(daemon);
}

#[test]
fn a_world_writable_state_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    match start_in_memory(config(), &dir) {
        Err(DaemonError::InsecureStateDir(p)) => assert_eq!(p, dir),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a world-writable state directory was accepted"),
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing was created in it"
    );
    let shown = DaemonError::InsecureStateDir(dir.clone()).to_string();
    assert!(
        shown.contains("world-writable") && shown.contains("chmod 0700"),
        "{shown}"
    );
}
