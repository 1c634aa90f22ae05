//! Export of a loaded configuration's texts as files: the profile (golden,
//! host-independent) and the host binding, each verbatim with its comments.
//!
//! Invariant: the export is cut from the texts the configuration was read from
//! ([`crate::config::Sources`]), not re-generated from the model, so comments and
//! layout survive; [`export_profile`] re-loads (with the host binding of
//! [`export_host`]) into an equal [`crate::Profile`]. A configuration built in code
//! has no texts, and exports as empty files (`[host]` alone for the binding).

use crate::config::Config;
use toml_edit::DocumentMut;

/// The profile part of a configuration's sources, verbatim (comments kept),
/// without the `[host]` table. If the host binding came from its own file, that
/// file is not included.
pub fn export_profile(config: &Config) -> String {
    let text = &config.sources.profile.text;
    let Ok(mut doc) = text.parse::<DocumentMut>() else {
        // A loaded configuration's text always parses; return it untouched.
        return text.clone();
    };
    if doc.remove("host").is_none() {
        return text.clone();
    }
    doc.to_string()
}

/// The host binding part, verbatim (comments kept), as a file whose only
/// top-level table is `[host]`: the host file when the binding came from one,
/// else the `[host]` table cut from the profile.
pub fn export_host(config: &Config) -> String {
    if let Some(host) = &config.sources.host {
        return host.text.clone();
    }
    let text = &config.sources.profile.text;
    let Ok(mut doc) = text.parse::<DocumentMut>() else {
        return "[host]\n".to_owned();
    };
    let others: Vec<String> = doc
        .as_table()
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| k != "host")
        .collect();
    for k in &others {
        doc.remove(k);
    }
    if doc.get("host").is_none() {
        return "[host]\n".to_owned();
    }
    // The document's own leading text belonged to the profile's first table.
    doc.decor_mut().clear();
    doc.to_string().trim_start_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HostBinding, parse_str};

    const PROFILE: &str = "# header\n[switch]\nname = \"s\"   # the name\n\n[[port_group]]\nname = \"g\"\nvlan = 10\n";
    const HOST: &str =
        "# this host\n[[host.port]]\nname = \"p\"\ninterface = \"tap0\"\nport_group = \"g\"\n";

    #[test]
    fn one_file_splits_into_profile_and_host() {
        let config = parse_str(&format!("{PROFILE}\n{HOST}"), "all.toml", None).unwrap();
        let profile = export_profile(&config);
        assert_eq!(profile, PROFILE);
        let host = export_host(&config);
        assert_eq!(host, HOST);
        let again = parse_str(&profile, "p.toml", Some((&host, "h.toml"))).unwrap();
        assert_eq!(again.profile, config.profile);
        assert_eq!(again.host, config.host);
    }

    #[test]
    fn a_separate_host_file_is_exported_as_read() {
        let config = parse_str(PROFILE, "p.toml", Some((HOST, "h.toml"))).unwrap();
        assert_eq!(export_profile(&config), PROFILE);
        assert_eq!(export_host(&config), HOST);
    }

    #[test]
    fn a_configuration_without_texts_exports_empty_files() {
        let config = parse_str(PROFILE, "p.toml", None).unwrap();
        let in_code = Config::new(config.profile.clone(), HostBinding::default());
        assert_eq!(export_profile(&in_code), "");
        assert_eq!(export_host(&in_code), "[host]\n");
        // A profile without [host]: an empty binding that loads.
        let host = export_host(&config);
        assert_eq!(host, "[host]\n");
        assert!(parse_str(PROFILE, "p.toml", Some((&host, "h.toml"))).is_ok());
    }
}
