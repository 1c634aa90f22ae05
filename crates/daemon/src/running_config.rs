//! The running configuration, kept across restarts (docs/decisions.md, "Running
//! and startup configuration"): `apply` persists what it applied, and a restart
//! comes back with it — unless the operator has changed the startup files
//! (`--config`, `--host`) since, which then win, as a deliberate new intent.
//!
//! One file in the state directory, [`FILE`] (JSON): the profile and host binding
//! texts the switch runs (as `profile export` and `--host-out` would write them),
//! the fingerprint of the startup files they derive from, who saved them and when.
//! The startup files are those the daemon started on, or those a reload (SIGHUP)
//! applied since (`service::StartupReload`).
//!
//! Invariants: the file is replaced atomically (written beside, fsync'd, renamed,
//! the directory fsync'd), so a crash leaves the old or the new one, never half of
//! either; a daemon started on the same startup files as the saved ones runs the
//! saved configuration, and one started on other startup files runs those (and
//! saves them); a saved file that does not load is reported and the startup files
//! are used — never a refusal to start.

use portcullis_control::{CompiledConfig, Config, export};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file in the state directory.
pub const FILE: &str = "running-config.json";
const FORMAT_VERSION: u32 = 1;

/// What is saved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedConfig {
    pub version: u32,
    /// The fingerprint ([`fingerprint`]) of the startup files the daemon was
    /// started on when this configuration was saved.
    pub startup: String,
    /// Who saved it: `startup` for the daemon's start, else the applying user.
    pub saved_by: String,
    /// When, RFC 3339 UTC.
    pub saved_at: String,
    pub profile: String,
    pub host: String,
}

/// Where the running configuration is saved, and the startup files' fingerprint
/// every save records.
#[derive(Clone, Debug)]
pub struct Persist {
    pub path: PathBuf,
    pub startup: String,
}

/// The fingerprint of a configuration's source texts (the startup files as read):
/// SHA-256 of the profile, a NUL, and the host file (if one was given).
pub fn fingerprint(config: &Config) -> String {
    fingerprint_texts(
        &config.sources.profile.text,
        config.sources.host.as_ref().map(|h| h.text.as_str()),
    )
}

/// [`fingerprint`] of the startup files' texts as read (the profile, and the host
/// file if one was given): what a reload (SIGHUP) records, so that an apply after
/// it is saved as deriving from the files it reloaded.
pub fn fingerprint_texts(profile: &str, host: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(profile.as_bytes());
    h.update([0]);
    if let Some(host) = host {
        h.update(host.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the daemon starts on, given the startup files (`startup`, already loaded)
/// and the state directory: the saved running configuration when it derives from
/// the same startup files, else the startup files. The second value says which
/// (`true`: the saved one), for the log.
pub fn choose(
    state_dir: &Path,
    startup: (Config, CompiledConfig),
) -> ((Config, CompiledConfig), Persist, bool) {
    let persist = Persist {
        path: state_dir.join(FILE),
        startup: fingerprint(&startup.0),
    };
    let saved = match read(&persist.path) {
        Ok(Some(s)) => s,
        Ok(None) => return (startup, persist, false),
        Err(e) => {
            tracing::error!(file = %persist.path.display(), error = %e, "the saved running configuration cannot be read: starting from the configuration files");
            return (startup, persist, false);
        }
    };
    if saved.startup != persist.startup {
        tracing::warn!(
            saved_by = %saved.saved_by,
            saved_at = %saved.saved_at,
            "the configuration files changed since the running configuration was saved: starting from the files (what was applied since is replaced)"
        );
        return (startup, persist, false);
    }
    let label = persist.path.display().to_string();
    let host_label = format!("{label} (host binding)");
    match portcullis_control::parse_str_compiled(
        &saved.profile,
        &label,
        Some((&saved.host, &host_label)),
    ) {
        Ok(c) => {
            tracing::info!(saved_by = %saved.saved_by, saved_at = %saved.saved_at, "starting from the saved running configuration");
            (c, persist, true)
        }
        Err(e) => {
            tracing::error!(error = %e, "the saved running configuration does not load: starting from the configuration files");
            (startup, persist, false)
        }
    }
}

fn read(path: &Path) -> Result<Option<SavedConfig>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let saved: SavedConfig = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if saved.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this daemon writes {FORMAT_VERSION})",
            saved.version
        ));
    }
    Ok(Some(saved))
}

impl Persist {
    /// Saves `config` as the running configuration, by `who`. Blocking (fsync).
    pub fn save(&self, config: &Config, who: &str) -> std::io::Result<()> {
        let saved = SavedConfig {
            version: FORMAT_VERSION,
            startup: self.startup.clone(),
            saved_by: who.to_string(),
            saved_at: portcullis_control::audit::format_rfc3339(std::time::SystemTime::now()),
            profile: export::export_profile(config),
            host: export::export_host(config),
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &json)
    }

    /// The saved running configuration, if any (for tests and tools).
    pub fn load(&self) -> Result<Option<SavedConfig>, String> {
        read(&self.path)
    }
}

/// Replaces `path` with `bytes`: written to a file beside it, fsync'd, renamed over
/// it, and the directory fsync'd (the rename itself durable).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.new");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
