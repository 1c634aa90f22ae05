//! Mapping the data plane's verdict on a compiled spec ([`SwitchSpec::check`]'s
//! [`SpecError`]) back to the configuration key it is about, so that an error the
//! configuration's own checks did not foresee is still located in the file.
//!
//! Invariant: every `SpecError` gets a key (the nearest table the user wrote, or
//! the top level for a check this function does not know yet); the message is the
//! data plane's own.

use super::compiled::CompiledConfig;
use super::error::ConfigError;
use super::features::PortSecurityOverride;
use super::model::{HostBinding, Profile};
use super::source::Sources;
use super::value::AclRef;
use portcullis_dataplane::{MAX_ACL_RULES, PortRole, SecureAging, SpecError};

/// [`SwitchSpec::check`]'s verdict, located at the key it is about.
pub(super) fn spec_error(
    e: &SpecError,
    c: &CompiledConfig,
    profile: &Profile,
    host: &HostBinding,
    sources: &Sources,
) -> ConfigError {
    let port_key = |name: &str| {
        c.spec
            .ports
            .iter()
            .rposition(|p| p.name == name)
            .map_or_else(
                || "host.port".to_owned(),
                |i| match c.interface_keys[i].strip_suffix(".interface") {
                    Some(port) => port.to_owned(),
                    None => c.interface_keys[i].clone(),
                },
            )
    };
    // A guest port's index in [[host.port]] and its group's in [[port_group]].
    let guest = |name: &str| {
        let i = host.ports.iter().rposition(|p| p.name == name)?;
        let g = profile
            .port_groups
            .iter()
            .position(|g| g.name == host.ports[i].port_group);
        Some((i, g))
    };
    let key = match e {
        SpecError::TooManyPorts(_) => "host.port".to_owned(),
        SpecError::BadOverlay(_) => "overlay".to_owned(),
        SpecError::EmptyMacTable | SpecError::MacTableTooSmall { .. } => {
            "switch.mac_table_size".to_owned()
        }
        SpecError::DuplicatePortName(n) | SpecError::UplinkNotTrunk(n) => port_key(n),
        SpecError::DuplicateMac { second, mac, .. } => {
            let spec = c.spec.ports.iter().rfind(|p| &p.name == second);
            let ps = spec.and_then(|p| p.features.port_security.as_ref());
            let initial = spec.is_some_and(|p| p.initial_mac == Some(*mac));
            let base = port_key(second);
            match ps {
                Some(ps) if !initial => match ps.static_macs.iter().position(|m| m == mac) {
                    Some(j) => format!("{base}.secure_macs[{j}]"),
                    // A restored sticky MAC: not in the files.
                    None => format!("{base}.port_security"),
                },
                _ => format!("{base}.mac"),
            }
        }
        SpecError::PortSecurity { port, .. } => {
            let spec = c.spec.ports.iter().rfind(|p| &p.name == port);
            let ps = spec.and_then(|p| p.features.port_security.as_ref());
            match (guest(port), spec, ps) {
                (Some((i, g)), Some(sp), Some(ps)) if sp.role == PortRole::Guest => {
                    let field = if ps.max_macs == 0 {
                        "max_macs"
                    } else if sp.configured_macs().len() > usize::from(ps.max_macs) {
                        "secure_macs"
                    } else if ps.aging != SecureAging::None && ps.aging_secs == 0 {
                        "aging_secs"
                    } else {
                        ""
                    };
                    let p = &host.ports[i];
                    let group = g.map(|g| (g, &profile.port_groups[g]));
                    let states = |t: Option<&PortSecurityOverride>| {
                        t.is_some_and(|t| match field {
                            "max_macs" => t.max_macs.is_some(),
                            "aging_secs" => t.aging_secs.is_some(),
                            _ => false,
                        })
                    };
                    if field == "secure_macs" {
                        format!("host.port[{i}].secure_macs")
                    } else if states(p.port_security.as_ref()) {
                        format!("host.port[{i}].port_security.{field}")
                    } else if let Some((g, _)) =
                        group.filter(|(_, gr)| states(gr.port_security.as_ref()))
                    {
                        format!("port_group[{g}].port_security.{field}")
                    } else if p.port_security.is_some() {
                        format!("host.port[{i}].port_security")
                    } else if let Some((g, _)) = group.filter(|(_, gr)| gr.port_security.is_some())
                    {
                        format!("port_group[{g}].port_security")
                    } else {
                        format!("host.port[{i}]")
                    }
                }
                _ => port_key(port),
            }
        }
        SpecError::UnknownAcl { port, acl } => {
            let names = |r: &Option<AclRef>| r.as_ref().and_then(AclRef::name) == Some(acl);
            match guest(port) {
                Some((i, g)) => {
                    let p = &host.ports[i];
                    let gr = g.map(|g| &profile.port_groups[g]);
                    if names(&p.mac_acl_in) {
                        format!("host.port[{i}].mac_acl_in")
                    } else if names(&p.mac_acl_out) {
                        format!("host.port[{i}].mac_acl_out")
                    } else if let (Some(g), Some(gr)) = (g, gr) {
                        if names(&gr.mac_acl_in) {
                            format!("port_group[{g}].mac_acl_in")
                        } else {
                            format!("port_group[{g}].mac_acl_out")
                        }
                    } else {
                        format!("host.port[{i}]")
                    }
                }
                None => match &profile.uplink_policy {
                    Some(up) if names(&up.mac_acl_out) && !names(&up.mac_acl_in) => {
                        "uplink_policy.mac_acl_out".to_owned()
                    }
                    Some(_) => "uplink_policy.mac_acl_in".to_owned(),
                    None => port_key(port),
                },
            }
        }
        SpecError::BadAcl { acl, .. } => {
            match c.spec.mac_acls.iter().rposition(|a| &a.name == acl) {
                Some(i) => {
                    let a = &c.spec.mac_acls[i];
                    if c.spec.mac_acls[..i].iter().any(|b| &b.name == acl) {
                        format!("mac_acl[{i}].name")
                    } else if a.rules.len() > MAX_ACL_RULES {
                        format!("mac_acl[{i}].rules")
                    } else if let Some(j) =
                        a.rules.iter().position(|r| r.cos.is_some_and(|c| c > 7))
                    {
                        format!("mac_acl[{i}].rules[{j}].cos")
                    } else {
                        format!("mac_acl[{i}]")
                    }
                }
                None => "mac_acl".to_owned(),
            }
        }
        SpecError::BadTeam { port, .. } => match guest(port) {
            Some((i, g)) => {
                let gr = g.map(|g| (g, &profile.port_groups[g]));
                if host.ports[i].teaming.is_some() {
                    format!("host.port[{i}].teaming")
                } else if let Some((g, _)) = gr.filter(|(_, gr)| gr.teaming.is_some()) {
                    format!("port_group[{g}].teaming")
                } else {
                    format!("host.port[{i}]")
                }
            }
            None => port_key(port),
        },
        SpecError::BadBinding { .. } => {
            if host.static_bindings.is_empty() {
                "switch.max_bindings".to_owned()
            } else {
                "host.static_binding".to_owned()
            }
        }
        // Checks the data plane may add later: located at the top level until this
        // function learns them.
        #[allow(unreachable_patterns)]
        _ => String::new(),
    };
    sources.error(&key, e.to_string())
}
