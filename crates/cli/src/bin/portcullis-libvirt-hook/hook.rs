//! What the hook does for each libvirt QEMU hook operation, against the switch's
//! runtime-port API ([`Switch`]).
//!
//! Invariants: a port is only ever added or removed for the domain that owns it
//! (its owner `domain_uuid`), so the `release` of a domain whose start failed
//! cannot remove the ports of the running domain that holds those port names (TAP
//! names, or vhost-user socket names); and
//! an `ensure` that fails leaves no port it added behind (each one it added is
//! removed again) — the domain then does not start.

use crate::domain::{Plan, PlannedPort};
use portcullis_api::endpoints::{NewPort, PortChangeAnswer};

/// A runtime port as the switch shows it (`GET /v1/ports/{name}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Added at run time (not a port of the configuration files).
    pub runtime: bool,
    /// Its owner's `domain_uuid`, if it has one.
    pub domain_uuid: Option<String>,
}

/// The calls the hook makes; the real one is the daemon's API.
pub trait Switch {
    fn port(&self, name: &str) -> Result<Option<Existing>, String>;
    /// The names of the runtime ports whose owner `domain_uuid` is `uuid`.
    fn owned_by(&self, uuid: &str) -> Result<Vec<String>, String>;
    fn add(&self, name: &str, port: &NewPort) -> Result<PortChangeAnswer, String>;
    fn remove(&self, name: &str) -> Result<PortChangeAnswer, String>;
}

/// What a libvirt QEMU hook call asks of us (`DOMAIN OPERATION SUB-OPERATION …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Before QEMU starts (`prepare`, `start`), when libvirtd reconnects to a
    /// running domain (`reconnect`) or attaches to a QEMU it did not start
    /// (`attach`): the ports must exist, else the domain must not run.
    Ensure,
    /// The domain's resources are released (`release`): its ports go.
    Release,
    /// An incoming migration or a restore (`migrate`, `restore`): libvirt may
    /// change the XML from our stdout; we check it can be put on the switch and
    /// print nothing (unchanged). The ports are added at its `prepare`.
    Check,
    /// Anything else (`started`, `stopped`, `migrate`'s other steps …).
    Nothing,
}

/// The action for a hook call's operation and sub-operation.
pub fn action(operation: &str, sub_operation: &str) -> Action {
    match (operation, sub_operation) {
        ("prepare" | "start" | "reconnect" | "attach", "begin") => Action::Ensure,
        ("release", "end") => Action::Release,
        ("migrate" | "restore", "begin") => Action::Check,
        _ => Action::Nothing,
    }
}

/// What a hook call did, for its log line on stderr (which libvirt keeps in
/// the domain's log).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<String>,
}

/// What names a planned port, for messages: its TAP (an ethernet interface's
/// `<target dev>`) or its vhost-user socket (a vhostuser interface's source).
fn named_by(p: &PlannedPort) -> (&'static str, &'static str) {
    if p.port.vhost_user.is_some() {
        ("vhost-user socket name", "socket file name")
    } else {
        ("TAP name", "<target dev>")
    }
}

/// Checks that `p` is this domain's to change: a runtime port owned by the same
/// domain UUID (or absent).
fn owned(plan: &Plan, p: &PlannedPort, have: &Option<Existing>) -> Result<bool, String> {
    let (name_kind, rename) = named_by(p);
    match have {
        None => Ok(false),
        Some(e) if !e.runtime => Err(format!(
            "port {:?} is a port of the switch's configuration, not a runtime port: domain {} cannot use the {name_kind} {:?}",
            p.name, plan.domain, p.name
        )),
        Some(e) if e.domain_uuid.as_deref() != Some(plan.uuid.as_str()) => Err(format!(
            "port {:?} belongs to {} on the switch, not to domain {} ({}): give this domain's interface another {rename}",
            p.name,
            e.domain_uuid
                .as_deref()
                .map(|u| format!("domain {u}"))
                .unwrap_or_else(|| "another owner".into()),
            plan.domain,
            plan.uuid
        )),
        Some(_) => Ok(true),
    }
}

/// Adds (or confirms) every port of `plan`. On a failure the ports this call
/// added are removed again, and the error names the port and the switch's reason.
pub fn ensure(sw: &dyn Switch, plan: &Plan) -> Result<Report, String> {
    let mut report = Report::default();
    let mut added: Vec<&str> = Vec::new();
    let mut result = Ok(());
    for p in &plan.ports {
        let step = (|| {
            let have = sw.port(&p.name)?;
            owned(plan, p, &have)?;
            let body = NewPort {
                may_exist: true,
                ..p.port.clone()
            };
            let a = sw.add(&p.name, &body).map_err(|e| {
                format!(
                    "the switch refused port {:?} of domain {}: {e}",
                    p.name, plan.domain
                )
            })?;
            Ok::<_, String>(a)
        })();
        match step {
            Ok(a) => {
                if a.outcome == "added" {
                    added.push(&p.name);
                }
                report.lines.push(format!(
                    "port {} {} (group {}, MAC {}{})",
                    p.name,
                    a.outcome,
                    a.runtime_port
                        .as_ref()
                        .map(|r| r.group.as_str())
                        .unwrap_or("?"),
                    p.port.mac.as_deref().unwrap_or("-"),
                    if a.bindings_restored > 0 {
                        format!(", {} binding(s) restored", a.bindings_restored)
                    } else {
                        String::new()
                    }
                ));
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Err(e) = result {
        let mut msg = e;
        for name in added.iter().rev() {
            if let Err(undo) = sw.remove(name) {
                msg.push_str(&format!(
                    "; and removing port {name:?} it had added failed: {undo}"
                ));
            }
        }
        return Err(msg);
    }
    Ok(report)
}

/// Removes every runtime port the switch shows as owned by the domain `uuid`.
/// The released domain's XML no longer names its TAPs (libvirt has forgotten
/// them by then), so the owner is what identifies its ports — TAPs and vhost-user
/// sockets alike — and never another domain's port. Every port is tried; the errors are joined.
pub fn release(sw: &dyn Switch, uuid: &str) -> Result<Report, String> {
    let mut report = Report::default();
    let mut errors = Vec::new();
    for name in sw.owned_by(uuid)? {
        match sw.remove(&name) {
            Ok(a) => report.lines.push(format!(
                "port {name} {} ({} binding(s) parked)",
                a.outcome, a.bindings_parked
            )),
            Err(e) => errors.push(format!("removing port {name:?}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory switch: runtime ports by name with their owner UUID and
    /// interface; `refuse` names ports whose add fails.
    #[derive(Default)]
    struct Fake {
        ports: RefCell<BTreeMap<String, Existing>>,
        refuse: Vec<String>,
        calls: RefCell<Vec<String>>,
    }

    fn answer(name: &str, outcome: &str) -> PortChangeAnswer {
        PortChangeAnswer {
            port: name.into(),
            outcome: outcome.into(),
            runtime_port: None,
            bindings_parked: 0,
            bindings_restored: 0,
            notes: vec![],
        }
    }

    impl Switch for Fake {
        fn port(&self, name: &str) -> Result<Option<Existing>, String> {
            Ok(self.ports.borrow().get(name).cloned())
        }
        fn owned_by(&self, uuid: &str) -> Result<Vec<String>, String> {
            Ok(self
                .ports
                .borrow()
                .iter()
                .filter(|(_, e)| e.runtime && e.domain_uuid.as_deref() == Some(uuid))
                .map(|(n, _)| n.clone())
                .collect())
        }
        fn add(&self, name: &str, port: &NewPort) -> Result<PortChangeAnswer, String> {
            self.calls.borrow_mut().push(format!("add {name}"));
            assert!(port.may_exist);
            if self.refuse.iter().any(|r| r == name) {
                return Err("409 mac_in_use".into());
            }
            let e = Existing {
                runtime: true,
                domain_uuid: port.owner.get("domain_uuid").cloned(),
            };
            let old = self.ports.borrow_mut().insert(name.into(), e);
            Ok(answer(
                name,
                if old.is_some() { "unchanged" } else { "added" },
            ))
        }
        fn remove(&self, name: &str) -> Result<PortChangeAnswer, String> {
            self.calls.borrow_mut().push(format!("remove {name}"));
            self.ports.borrow_mut().remove(name);
            Ok(answer(name, "removed"))
        }
    }

    const TWO: &str = r#"<domain type='qemu'><name>web1</name><uuid>u-1</uuid>
      <metadata><pc:ports xmlns:pc="https://portcullis.dev/libvirt/1" group="web"/></metadata>
      <devices>
        <interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='web1-a'/></interface>
        <interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='web1-b'/></interface>
      </devices></domain>"#;

    #[test]
    fn operations_map_to_actions() {
        assert_eq!(action("prepare", "begin"), Action::Ensure);
        assert_eq!(action("start", "begin"), Action::Ensure);
        assert_eq!(action("reconnect", "begin"), Action::Ensure);
        assert_eq!(action("attach", "begin"), Action::Ensure);
        assert_eq!(action("release", "end"), Action::Release);
        assert_eq!(action("migrate", "begin"), Action::Check);
        assert_eq!(action("restore", "begin"), Action::Check);
        assert_eq!(action("started", "begin"), Action::Nothing);
        assert_eq!(action("stopped", "end"), Action::Nothing);
    }

    #[test]
    fn ensure_adds_each_port_and_is_idempotent() {
        let sw = Fake::default();
        let p = plan(TWO).unwrap();
        let r = ensure(&sw, &p).unwrap();
        assert_eq!(r.lines.len(), 2);
        assert!(r.lines[0].starts_with("port web1-a added"), "{r:?}");
        let r = ensure(&sw, &p).unwrap();
        assert!(r.lines[1].starts_with("port web1-b unchanged"), "{r:?}");
        assert_eq!(sw.ports.borrow().len(), 2);
    }

    #[test]
    fn a_refused_port_fails_the_start_and_removes_what_this_call_added() {
        let sw = Fake {
            refuse: vec!["web1-b".into()],
            ..Fake::default()
        };
        let e = ensure(&sw, &plan(TWO).unwrap()).unwrap_err();
        assert!(
            e.contains("refused port \"web1-b\" of domain web1") && e.contains("mac_in_use"),
            "{e}"
        );
        assert!(sw.ports.borrow().is_empty(), "web1-a was removed again");
        assert_eq!(
            *sw.calls.borrow(),
            vec!["add web1-a", "add web1-b", "remove web1-a"]
        );
    }

    #[test]
    fn another_domains_port_is_neither_taken_nor_released() {
        let sw = Fake::default();
        sw.ports.borrow_mut().insert(
            "web1-b".into(),
            Existing {
                runtime: true,
                domain_uuid: Some("u-2".into()),
            },
        );
        let p = plan(TWO).unwrap();
        let e = ensure(&sw, &p).unwrap_err();
        assert!(e.contains("belongs to domain u-2"), "{e}");
        assert_eq!(sw.ports.borrow().len(), 1, "web1-a added, then removed");
        // A failed start's release leaves the other domain's port.
        let r = release(&sw, &p.uuid).unwrap();
        assert!(sw.ports.borrow().contains_key("web1-b"));
        assert!(r.lines.is_empty(), "{r:?}");
    }

    #[test]
    fn a_configured_port_is_never_touched() {
        let sw = Fake::default();
        sw.ports.borrow_mut().insert(
            "web1-a".into(),
            Existing {
                runtime: false,
                domain_uuid: None,
            },
        );
        let e = ensure(&sw, &plan(TWO).unwrap()).unwrap_err();
        assert!(e.contains("port of the switch's configuration"), "{e}");
        assert!(sw.calls.borrow().is_empty());
    }

    #[test]
    fn a_vhost_user_port_name_taken_asks_for_another_socket_not_a_tap() {
        let vhost = r#"<domain type='qemu'><name>web1</name><uuid>u-1</uuid>
          <metadata><pc:ports xmlns:pc="https://portcullis.dev/libvirt/1" group="web"/></metadata>
          <devices>
            <interface type='vhostuser'><mac address='52:54:00:00:00:03'/>
              <source type='unix' path='/run/portcullis/web1-v.sock' mode='client'/></interface>
          </devices></domain>"#;
        let p = plan(vhost).unwrap();
        let sw = Fake::default();
        let taken = |runtime, uuid: Option<&str>| {
            sw.ports.borrow_mut().insert(
                "web1-v".into(),
                Existing {
                    runtime,
                    domain_uuid: uuid.map(str::to_string),
                },
            );
            ensure(&sw, &p).unwrap_err()
        };
        let e = taken(true, Some("u-2"));
        assert!(
            e.contains("belongs to domain u-2") && e.ends_with("another socket file name"),
            "{e}"
        );
        let e = taken(false, None);
        assert!(
            e.contains("cannot use the vhost-user socket name \"web1-v\"") && !e.contains("TAP"),
            "{e}"
        );
    }

    #[test]
    fn release_removes_the_domains_own_ports() {
        let sw = Fake::default();
        let p = plan(TWO).unwrap();
        ensure(&sw, &p).unwrap();
        sw.ports.borrow_mut().insert(
            "other".into(),
            Existing {
                runtime: true,
                domain_uuid: Some("u-2".into()),
            },
        );
        let r = release(&sw, &p.uuid).unwrap();
        assert_eq!(r.lines.len(), 2, "{r:?}");
        let left: Vec<String> = sw.ports.borrow().keys().cloned().collect();
        assert_eq!(left, vec!["other".to_string()]);
    }
}
