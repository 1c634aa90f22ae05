//! Configuration: loading the profile and host binding (TOML), validating them
//! completely with located errors, and compiling them into the data plane's
//! [`SwitchSpec`].
//!
//! ```text
//! load / parse_str ─► syntax (toml_edit) ─► shape (serde, deny_unknown_fields)
//!                  ─► values (validate.rs) ─► cross-references + SwitchSpec::check (compile.rs)
//! ```
//!
//! The code is cut by feature: `features/<feature>.rs` (and `management.rs`) each
//! hold a feature's raw shape, model, conversion, checks, spec and flattening;
//! `raw.rs`, `model.rs`, `validate.rs`, `compile.rs` and `crate::diff` are the
//! assembly that composes them in a fixed order, over a leaf that depends on no
//! feature (`error.rs`, `source.rs`, `keys.rs`, `value.rs`, `check.rs`,
//! `flat.rs`). [`load_compiled`] and [`parse_str_compiled`] return the spec the
//! validation built, so callers never compile twice.
//!
//! Nothing here touches the host: interface existence is the daemon's check.
//! The user-facing reference is `docs/config.md`.

pub(crate) mod check;
mod compile;
mod compiled;
mod error;
pub(crate) mod features;
pub(crate) mod flat;
pub(crate) mod keys;
pub(crate) mod management;
mod model;
mod raw;
mod source;
mod spec_error;
mod validate;
pub(crate) mod value;

#[cfg(test)]
mod tests;

pub use compiled::{CompiledConfig, StickyRefused};
pub use error::{ConfigError, ConfigErrors};
pub use features::*;
pub use management::{
    DEFAULT_SOCKET_GROUP, DEFAULT_SOCKET_MODE, Management, Members, RoleMembers, SyslogTarget,
    TlsFiles, TokenSpec,
};
pub use model::*;
pub use source::{SourceFile, Sources};
pub use value::{
    AclRef, MAX_NAME_LEN, NO_ACL, NO_LIMIT_WORD, Override, RATE_LIMIT_PPS_RANGE,
    RECOVERY_SECS_RANGE, RateLimit, VlanRange, vlan_set,
};

use raw::{RawHostFile, RawProfileFile};
use std::path::Path;
use value::{Converter, Poison};

/// A loaded, fully validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub profile: Profile,
    pub host: HostBinding,
    /// The texts it was read from, to locate errors found later (see
    /// [`Config::error_at`]).
    pub sources: Sources,
}

/// The example configuration of `docs/config.md` (profile and host binding in one
/// file), with comments.
pub fn example_profile() -> &'static str {
    include_str!("example.toml")
}

/// Reads, parses and validates the profile at `profile_path` and, when given, the
/// host binding at `host_path` (a file whose only top-level table is `[host]`;
/// without it, `[host]` is read from the profile). All errors found are returned.
pub fn load(profile_path: &Path, host_path: Option<&Path>) -> Result<Config, ConfigErrors> {
    load_compiled(profile_path, host_path).map(|(config, _)| config)
}

/// [`load`], with the configuration's compilation: the spec is built once, by the
/// same pass that validated it (what the daemon runs; [`Config::compile`] is for a
/// configuration changed in code).
pub fn load_compiled(
    profile_path: &Path,
    host_path: Option<&Path>,
) -> Result<(Config, CompiledConfig), ConfigErrors> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })
    };
    let profile = read(profile_path);
    let host = host_path.map(|p| (read(p), p));
    let mut errors = Vec::new();
    let profile_src = profile.as_ref().map_err(|e| errors.push(e.clone())).ok();
    let host_src = match &host {
        Some((Ok(src), path)) => Some((src.as_str(), *path)),
        Some((Err(e), _)) => {
            errors.push(e.clone());
            None
        }
        None => None,
    };
    if let Some(e) = ConfigErrors::from_vec(errors) {
        return Err(e);
    }
    let profile_src = profile_src.map_or("", String::as_str);
    parse_inner(profile_src, profile_path, host_src)
}

/// [`load`] from strings. `profile_name` and the second element of `host_src`
/// (`(text, name)`) name the files in errors.
pub fn parse_str(
    profile_src: &str,
    profile_name: &str,
    host_src: Option<(&str, &str)>,
) -> Result<Config, ConfigErrors> {
    parse_str_compiled(profile_src, profile_name, host_src).map(|(config, _)| config)
}

/// [`parse_str`], with the configuration's compilation (see [`load_compiled`]).
pub fn parse_str_compiled(
    profile_src: &str,
    profile_name: &str,
    host_src: Option<(&str, &str)>,
) -> Result<(Config, CompiledConfig), ConfigErrors> {
    parse_inner(
        profile_src,
        Path::new(profile_name),
        host_src.map(|(src, name)| (src, Path::new(name))),
    )
}

/// The name errors give the stand-in host binding of [`parse_profile_alone`].
pub const STAND_IN_HOST_NAME: &str =
    "(a stand-in host binding for the profile's uplinks and overlay)";

/// The stand-in endpoint [`parse_profile_alone`] gives an `[overlay]`
/// (TEST-NET-1, RFC 5737: never a real host).
pub const STAND_IN_LOCAL_IP: &str = "192.0.2.1";

/// A profile validated on its own, as a cluster distributes it (each host keeps
/// its own binding): a text with a `[host]` table is a whole configuration,
/// validated as written; otherwise each logical uplink is bound to a stand-in NIC
/// (`nic0`, `nic1`, …) and an `[overlay]` gets a stand-in `[host.overlay]`
/// ([`STAND_IN_LOCAL_IP`], no peers), so that only the profile's own content is
/// judged. The stand-in is never stored: export the profile with
/// [`crate::export::export_profile`].
pub fn parse_profile_alone(
    profile_src: &str,
    profile_name: &str,
) -> Result<(Config, CompiledConfig), ConfigErrors> {
    // A text that is not TOML gets the usual located error from the parser.
    let table = profile_src.parse::<toml::Table>().ok();
    let stand_in = table.filter(|t| !t.contains_key("host")).map(|t| {
        let uplinks: String = t
            .get("uplink_policy")
            .and_then(|u| u.get("uplinks"))
            .and_then(|u| u.as_array())
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str())
            .enumerate()
            .map(|(i, u)| format!("{} = \"nic{i}\"\n", toml::Value::from(u)))
            .collect();
        let overlay = if t.contains_key("overlay") {
            format!("\n[host.overlay]\nlocal_ip = \"{STAND_IN_LOCAL_IP}\"\n")
        } else {
            String::new()
        };
        format!("[host.uplinks]\n{uplinks}{overlay}")
    });
    parse_str_compiled(
        profile_src,
        profile_name,
        stand_in.as_deref().map(|h| (h, STAND_IN_HOST_NAME)),
    )
}

fn parse_inner(
    profile_src: &str,
    profile_name: &Path,
    host_src: Option<(&str, &Path)>,
) -> Result<(Config, CompiledConfig), ConfigErrors> {
    // 1. Syntax, with a span index of each file.
    let profile_file = SourceFile::parse(profile_name, profile_src);
    let host_file = host_src.map(|(src, name)| SourceFile::parse(name, src));
    let (profile_file, host_file) = match (profile_file, host_file.transpose()) {
        (Ok(p), Ok(h)) => (p, h),
        (p, h) => {
            let errors = [p.err(), h.err()].into_iter().flatten().collect();
            return Err(finish(errors, profile_name));
        }
    };
    let sources = Sources {
        profile: profile_file,
        host: host_file,
    };

    // 2. Shape: known keys, types, required keys.
    let raw_profile = toml::from_str::<RawProfileFile>(profile_src)
        .map_err(|e| sources.profile.error_at_span(e.span(), e.message()));
    let raw_host = match (&sources.host, host_src) {
        (Some(file), Some((src, _))) => Some(
            toml::from_str::<RawHostFile>(src)
                .map_err(|e| file.error_at_span(e.span(), e.message())),
        ),
        _ => None,
    };
    let (mut raw_profile, raw_host) = match (raw_profile, raw_host.transpose()) {
        (Ok(p), Ok(h)) => (p, h.map(|h| h.host)),
        (p, h) => {
            let errors = [p.err(), h.err()].into_iter().flatten().collect();
            return Err(finish(errors, &sources.profile.name));
        }
    };

    // 3. Values.
    let mut conv = Converter::new(&sources);
    let host_raw = match raw_host {
        Some(h) => {
            if raw_profile.host.is_some() {
                let host_name = sources.host.as_ref().map(|h| h.name.display().to_string());
                conv.errors.push(sources.profile.error_at_key(
                    "host",
                    format!(
                        "the host binding is given twice: here and in {}; keep [host] in one place",
                        host_name.unwrap_or_default()
                    ),
                ));
            }
            h
        }
        None => raw_profile.host.take().unwrap_or_default(),
    };
    let profile = conv.profile(raw_profile);
    let host = conv.host(host_raw);
    let Converter {
        mut errors, poison, ..
    } = conv;

    // 4. Cross-references, limits, and the data plane's own check.
    let compiled = compile::compile(&profile, &host, &sources, &poison);
    let compiled = match compiled {
        Ok(compiled) if errors.is_empty() => compiled,
        Ok(_) => return Err(finish(errors, &sources.profile.name)),
        Err(more) => {
            errors.extend(more);
            return Err(finish(errors, &sources.profile.name));
        }
    };
    let config = Config {
        profile,
        host,
        sources,
    };
    Ok((config, compiled))
}

/// Sorts errors by file (profile, then host) and position, and wraps them.
fn finish(mut errors: Vec<ConfigError>, profile_name: &Path) -> ConfigErrors {
    let file_rank = |e: &ConfigError| usize::from(e.file != profile_name);
    errors.sort_by_key(|e| (file_rank(e), e.line.unwrap_or(0), e.column.unwrap_or(0)));
    match ConfigErrors::from_vec(errors) {
        Some(e) => e,
        None => ConfigErrors::from(ConfigError {
            file: Default::default(),
            line: None,
            column: None,
            key: String::new(),
            message: "invalid configuration".into(),
        }),
    }
}

impl Config {
    /// A configuration built in code, with no source files: its errors have no line.
    pub fn new(profile: Profile, host: HostBinding) -> Config {
        Config {
            profile,
            host,
            sources: Sources {
                profile: SourceFile::new("<memory>", ""),
                host: None,
            },
        }
    }

    /// The data-plane spec, and the interface, port group and interface key of
    /// each port.
    /// A configuration from [`load`] or [`parse_str`] always compiles; one changed
    /// in code is checked again here.
    pub fn compile(&self) -> Result<CompiledConfig, ConfigErrors> {
        compile::compile(&self.profile, &self.host, &self.sources, &Poison::default())
            .map_err(|e| finish(e, &self.sources.profile.name))
    }

    /// An error about dotted `key`, located in the file and line that hold it, for
    /// problems found outside this crate (e.g. the daemon: interface not found).
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.sources.error(key, message)
    }
}
