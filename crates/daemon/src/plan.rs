//! The one reconfiguration path: [`prepare`] turns a compiled configuration and
//! what is running now ([`Current`]) into a [`Plan`] — the new switch, with the
//! sticky MACs restored and the uplinks' carrier probed, and the I/O of every port
//! that is new or moved. The start launches the data plane on a plan prepared
//! against nothing running ([`Current::nothing`]); an apply sends it to the running
//! data-plane thread ([`Plan::into_apply`]); a cluster watcher would do the same.
//!
//! Invariant: preparing changes nothing that runs. A port that is kept (same name,
//! same interface) is not touched: its socket stays with the data-plane thread.
//! Everything a plan created (TAPs) is undone when the plan is dropped unless the
//! caller keeps it ([`Plan::undo`], [`CreatedTaps::keep`]). Preparing blocks
//! (sockets, BPF, TAPs): in async code, run it with `spawn_blocking`.

use crate::ports::{self, Attachment, CreatedTaps, PortError, PortIo, PortLinks};
use crate::runtime::ApplyPlan;
use crate::sticky_store::{StickyMacStore, StickyStoreError};
use portcullis_control::CompiledConfig;
use portcullis_dataplane::{CarryOver, PortId, SpecError, Switch, Timestamp};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What runs now, as far as preparing a plan needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    /// The running ports, by name, with what each is attached to (none at start).
    pub ports: Vec<(String, Attachment)>,
    /// Ports are in-memory queues (tests): no interfaces to open.
    pub in_memory: bool,
    /// Sticky MACs, restored into every configuration prepared.
    pub store: Arc<StickyMacStore>,
    /// The data plane's clock now (the new switch's origin).
    pub now: Timestamp,
}

impl Current {
    /// Nothing running yet: every port is opened.
    pub(crate) fn nothing(store: Arc<StickyMacStore>, in_memory: bool) -> Self {
        Self {
            ports: Vec::new(),
            in_memory,
            store,
            now: Timestamp(0),
        }
    }

    /// The ports of the running configuration `running`.
    pub(crate) fn running(
        running: &CompiledConfig,
        in_memory: bool,
        store: Arc<StickyMacStore>,
        now: Timestamp,
    ) -> Self {
        let names = running.spec.ports.iter().map(|p| p.name.clone());
        Self {
            ports: names.zip(Attachment::of(running, in_memory)).collect(),
            in_memory,
            store,
            now,
        }
    }
}

/// Why a plan could not be prepared. Nothing that runs has changed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Store(#[from] StickyStoreError),
    #[error("the data plane refused the configuration: {0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Port(#[from] PortError),
}

/// A prepared configuration: everything the data plane needs to run it.
pub(crate) struct Plan {
    /// The configuration, with the stored sticky MACs restored into its spec.
    pub compiled: CompiledConfig,
    pub switch: Switch,
    /// What each port is attached to, in port order.
    pub attachments: Vec<Attachment>,
    /// The opened I/O of the ports that are new or moved, by their index; kept
    /// ports keep the I/O they have.
    pub opened: Vec<(usize, PortIo)>,
    /// For memory queues: the handle of each opened port, by its index.
    pub handles: Vec<(usize, portcullis_io::MemoryHandle)>,
    pub links: Box<dyn PortLinks>,
    pub link_monitor: Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)>,
    /// The undo of a failed start or apply: the TAPs this plan created.
    pub undo: CreatedTaps,
    /// The ports, by index, whose interface does not exist yet: neither opened nor
    /// kept, they wait (state `no-interface`) until the runtime finds it.
    pub waiting: Vec<usize>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("attachments", &self.attachments)
            .field(
                "opened",
                &self.opened.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .field("undo", &self.undo)
            .finish_non_exhaustive()
    }
}

/// Prepares `compiled` against what runs now: restores the sticky MACs, builds the
/// switch, opens the ports that are new or moved (creating TAPs), probes the
/// uplinks' carrier and sets up their monitor. The first failure returns, with
/// what was opened closed and what was created removed.
pub(crate) fn prepare(
    mut compiled: CompiledConfig,
    current: &Current,
) -> Result<Plan, PrepareError> {
    restore_sticky(&current.store, &mut compiled)?;
    let mut switch = Switch::new(&compiled.spec, current.now)?;
    let attachments = Attachment::of(&compiled, current.in_memory);
    // The namespace's interfaces in one look, not a system call per port (a switch
    // may hold a thousand ports waiting for theirs).
    let present = (!current.in_memory)
        .then(portcullis_io::interface_indexes)
        .and_then(Result::ok);
    let exists = |ifname: &str| match &present {
        Some(m) => m.contains_key(ifname),
        None => portcullis_io::interface_exists(ifname),
    };
    let running: std::collections::HashMap<&str, &Attachment> = current
        .ports
        .iter()
        .map(|(name, a)| (name.as_str(), a))
        .collect();
    let mut undo = CreatedTaps::default();
    let mut opened = Vec::new();
    let mut handles = Vec::new();
    let mut waiting = Vec::new();
    for (i, (spec, a)) in compiled.spec.ports.iter().zip(&attachments).enumerate() {
        let kept = running
            .get(spec.name.as_str())
            .is_some_and(|old| a.keeps_io_of(old));
        if kept {
            continue;
        }
        if let Attachment::Netdev { ifname, .. } = a
            && !exists(ifname)
        {
            // A port whose interface does not exist yet (a runtime port added before
            // its VM or container started; configured ports were checked before):
            // it waits in state `no-interface` and attaches when it appears.
            waiting.push(i);
            continue;
        }
        let (io, handle) = a.open(&spec.name, &mut undo)?;
        opened.push((i, io));
        handles.extend(handle.map(|h| (i, h)));
    }
    // Carrier is probed on the ports opened now; a kept port's link state is the
    // running switch's (the carry-over moves it).
    ports::initial_carrier(&mut switch, &attachments, opened.iter().map(|(i, _)| *i));
    // Without an interface there is no link: a waiting port is out of the floods
    // until the runtime attaches it.
    for i in &waiting {
        let _ = switch.set_link_up(PortId(*i as u16), false, current.now);
    }
    switch.discard_events();
    let links = ports::links(&compiled, &attachments);
    // Looked at again when ports were opened: a TAP created just now has an index.
    let present = match present {
        Some(_) if !opened.is_empty() => portcullis_io::interface_indexes().ok(),
        p => p,
    };
    let link_monitor = ports::link_monitor(&compiled, &attachments, present.as_ref());
    Ok(Plan {
        compiled,
        switch,
        attachments,
        opened,
        handles,
        links,
        link_monitor,
        undo,
        waiting,
    })
}

impl Plan {
    /// The swap the data-plane thread makes, answered on the returned receiver;
    /// with the configuration and the undo, to keep once the swap is answered.
    pub(crate) fn into_apply(
        self,
    ) -> (
        ApplyPlan,
        oneshot::Receiver<CarryOver>,
        CompiledConfig,
        CreatedTaps,
    ) {
        let (reply, answer) = oneshot::channel();
        let apply = ApplyPlan {
            interfaces: crate::ports::port_labels(&self.compiled),
            groups: group_names(&self.compiled),
            switch: self.switch,
            new_io: self.opened,
            links: self.links,
            link_monitor: self.link_monitor,
            reply,
        };
        (apply, answer, self.compiled, self.undo)
    }
}

/// The port group of each port ("" for uplinks), for snapshots.
pub(crate) fn group_names(c: &CompiledConfig) -> Vec<String> {
    c.groups
        .iter()
        .map(|g| g.clone().unwrap_or_default())
        .collect()
}

/// Puts the sticky MACs the store remembers back into the spec; the ones that no
/// longer fit the configuration are logged and left out.
fn restore_sticky(
    store: &StickyMacStore,
    compiled: &mut CompiledConfig,
) -> Result<(), StickyStoreError> {
    let sticky_ports: Vec<String> = compiled
        .spec
        .ports
        .iter()
        .filter(|p| {
            p.features
                .port_security
                .as_ref()
                .is_some_and(|ps| ps.sticky)
        })
        .map(|p| p.name.clone())
        .collect();
    for port in sticky_ports {
        let macs = store.sticky(&port)?;
        for (mac, why) in compiled.restore_sticky(&port, &macs) {
            tracing::warn!(%port, %mac, reason = %why, "stored sticky MAC not restored");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile with one port group and the guest ports `ports` (name, interface,
    /// tap).
    fn compiled(ports: &[(&str, &str, bool)]) -> CompiledConfig {
        let mut text = String::from(
            "[switch]\nname = \"plan\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n",
        );
        for (name, ifname, tap) in ports {
            text.push_str(&format!(
                "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{ifname}\"\nport_group = \"web\"\ntap = {tap}\n"
            ));
        }
        portcullis_control::parse_str(&text, "plan.toml", None)
            .expect("valid")
            .compile()
            .expect("compiles")
    }

    fn store(dir: &tempfile::TempDir) -> Arc<StickyMacStore> {
        Arc::new(StickyMacStore::open(dir.path()).expect("store"))
    }

    /// A state directory, if the test runs as root (TAPs); else `None`, skipped.
    fn root_and_dir() -> Option<tempfile::TempDir> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: creating a TAP needs root");
            return None;
        }
        Some(tempfile::tempdir().unwrap())
    }

    fn opened(plan: &Plan) -> Vec<usize> {
        plan.opened.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn against_nothing_running_every_port_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let c = compiled(&[("vm1", "m1", false), ("vm2", "m2", false)]);
        let plan = prepare(c, &Current::nothing(store(&dir), true)).expect("prepared");
        assert_eq!(opened(&plan), vec![0, 1]);
        assert_eq!(
            plan.handles.len(),
            2,
            "memory ports come with their handles"
        );
        assert_eq!(plan.switch.ports().len(), 2);
        assert!(plan.link_monitor.is_none(), "no uplinks on interfaces");
    }

    #[test]
    fn kept_ports_keep_their_io_new_and_moved_ones_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let old = compiled(&[
            ("vm1", "m1", false),
            ("vm2", "m2", false),
            ("vm3", "m3", false),
        ]);
        let current = Current::running(&old, true, store(&dir), Timestamp(5));
        // vm1 stays, vm2 moves to another interface, vm3 goes, vm4 is new.
        let new = compiled(&[
            ("vm1", "m1", false),
            ("vm2", "m2b", false),
            ("vm4", "m4", false),
        ]);
        let plan = prepare(new, &current).expect("prepared");
        assert_eq!(opened(&plan), vec![1, 2], "vm2 (moved) and vm4 (new)");
        let (apply, _answer, compiled, _undo) = plan.into_apply();
        assert_eq!(apply.new_io.len(), 2);
        assert_eq!(apply.interfaces, vec!["m1", "m2b", "m4"]);
        // Option 82's circuit-ids ("plan/vm1" …) come from the switch's name and
        // ports (`egress.rs`), no longer from the plan.
        let names: Vec<&str> = apply
            .switch
            .ports()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            (apply.switch.name(), names),
            ("plan", vec!["vm1", "vm2", "vm4"])
        );
        assert_eq!(apply.groups, vec!["web", "web", "web"]);
        assert_eq!(compiled.interfaces, apply.interfaces);
    }

    #[test]
    fn the_same_configuration_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = compiled(&[("vm1", "m1", false), ("vm2", "m2", false)]);
        let current = Current::running(&c, true, store(&dir), Timestamp(0));
        let plan = prepare(c, &current).expect("prepared");
        assert!(plan.opened.is_empty());
        assert!(plan.handles.is_empty());
    }

    #[test]
    fn sticky_macs_from_the_store_are_restored_into_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mac: portcullis_dataplane::MacAddr = "52:54:00:00:00:07".parse().unwrap();
        store.add_sticky("vm1", mac, 1).unwrap();
        let text = "[switch]\nname = \"plan\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[port_group.port_security]\nenabled = true\nmax_macs = 2\nsticky = true\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"m1\"\nport_group = \"web\"\n";
        let c = portcullis_control::parse_str(text, "plan.toml", None)
            .expect("valid")
            .compile()
            .expect("compiles");
        let plan = prepare(c, &Current::nothing(store, true)).expect("prepared");
        let ps = plan.compiled.spec.ports[0]
            .features
            .port_security
            .as_ref()
            .expect("port security");
        assert_eq!(ps.sticky_macs, vec![mac]);
    }

    /// A failure opens nothing that stays: the TAP created for the first port is
    /// removed when the second port cannot be opened (a TAP the kernel will not
    /// create: its name has a '/'). Needs root (TAPs).
    #[test]
    fn a_failed_prepare_removes_the_taps_it_created() {
        let Some(dir) = root_and_dir() else { return };
        let tap = format!("pcplan{}", std::process::id() % 100_000);
        let bad = format!("pc/bad{}", std::process::id() % 100_000);
        let mut c = compiled(&[("vm1", &tap, true), ("vm2", "placeholder", true)]);
        // A name the configuration would refuse, so that only the kernel can.
        c.interfaces[1] = bad.clone();
        let e = prepare(c, &Current::nothing(store(&dir), false)).expect_err("vm2 cannot open");
        assert!(
            matches!(&e, PrepareError::Port(p) if p.port == "vm2" && p.interface == bad),
            "{e}"
        );
        assert!(
            !portcullis_io::interface_exists(&tap),
            "the TAP of the failed prepare is removed"
        );
    }

    /// A port whose interface does not exist yet is neither opened nor an error:
    /// it waits (`no-interface`) for the runtime to attach it. Needs root.
    #[test]
    fn a_port_without_its_interface_waits_instead_of_failing() {
        let Some(dir) = root_and_dir() else { return };
        let missing = format!("pcnone{}", std::process::id() % 100_000);
        let c = compiled(&[("vm1", "lo", false), ("vm2", &missing, false)]);
        let plan = prepare(c, &Current::nothing(store(&dir), false)).expect("prepared");
        assert_eq!(opened(&plan), vec![0]);
        assert_eq!(plan.waiting, vec![1]);
        assert!(
            !plan.switch.ports()[1].link_up,
            "a port without its interface has no link: it is out of the floods"
        );
    }

    #[test]
    fn a_kept_plan_leaves_its_taps() {
        let Some(dir) = root_and_dir() else { return };
        let tap = format!("pckeep{}", std::process::id() % 100_000);
        let c = compiled(&[("vm1", &tap, true)]);
        let mut plan = prepare(c, &Current::nothing(store(&dir), false)).expect("prepared");
        assert_eq!(plan.undo.names(), std::slice::from_ref(&tap));
        assert_eq!(
            plan.opened[0].1.in_use.map(|u| u.backend),
            Some(portcullis_control::config::Backend::AfPacket)
        );
        plan.undo.keep();
        drop(plan);
        assert!(portcullis_io::interface_exists(&tap), "kept");
        portcullis_io::delete_persistent_tap(&tap).unwrap();
    }
}
