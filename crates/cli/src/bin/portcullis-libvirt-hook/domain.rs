//! The switch ports a libvirt domain asks for, read from the domain XML that
//! libvirt hands its QEMU hook on stdin (docs/libvirt.md).
//!
//! A domain is on the switch when its `<metadata>` holds our element
//!
//! ```xml
//! <pc:ports xmlns:pc="https://portcullis.dev/libvirt/1" group="web">
//!   <pc:port mac="52:54:00:12:34:56" group="db"/>
//! </pc:ports>
//! ```
//!
//! Then every `<interface type='ethernet'>` of the domain is a runtime port named
//! after its `<target dev='…'/>` (the TAP), with the interface's MAC, in the group
//! (or access VLAN) its `<pc:port>` names by MAC, else the one `<pc:ports>` names.
//! Every `<interface type='vhostuser'>` with `<source type='unix' path='…'
//! mode='…'/>` is a vhost-user runtime port on that socket, named after the
//! socket's file name less `.sock` (`/run/portcullis/web1-eth0.sock` → port
//! `web1-eth0`), placed the same way; libvirt's `mode` is QEMU's side, so
//! `mode='client'` makes a port in server mode and `mode='server'` one in client
//! mode.
//!
//! Invariant: [`plan`] is a pure function of the XML, and it refuses (rather than
//! guesses) whatever would leave a guest NIC outside the switch's policy: an
//! ethernet interface without a target name or MAC or group, a vhostuser
//! interface without a Unix socket source (whose file name makes a port name) or
//! MAC or group, a `<pc:port>` that names no interface of the domain, two entries
//! for one MAC. A domain without our element is not ours: its plan is empty.

use portcullis_api::endpoints::{NewPort, PortOwner, VhostUserSocket};
use std::collections::BTreeSet;

/// The XML namespace of our metadata element.
pub const NAMESPACE: &str = "https://portcullis.dev/libvirt/1";

/// Target names libvirt keeps for the TAPs it names itself: a `<target dev>` with
/// one of these prefixes is dropped from the inactive definition and replaced at
/// start by a generated name, which the hook cannot know at `prepare`.
const RESERVED_PREFIXES: &[&str] = &["vnet", "vif", "macvtap", "macvlan"];

/// One runtime port the domain needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPort {
    /// The port's name: the TAP's name (`<target dev>`) for an ethernet
    /// interface, the socket's file name less `.sock` for a vhostuser one.
    pub name: String,
    /// What `POST /v1/ports/{name}` is sent (without `may_exist`).
    pub port: NewPort,
}

/// What the hook does for one domain.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    pub domain: String,
    pub uuid: String,
    /// Empty when the domain has no `<pc:ports>` element: nothing to do.
    pub ports: Vec<PlannedPort>,
}

/// Why a domain's XML cannot be put on the switch; the message is what libvirt
/// shows the user who started the domain.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the domain XML on stdin is not XML: {0}")]
    Xml(String),
    #[error("the XML on stdin is not a libvirt domain (its root is <{0}>)")]
    NotDomain(String),
    #[error("the domain has no <{0}>")]
    Missing(&'static str),
    #[error(
        "interface {index} (type ethernet, MAC {mac}) has no <target dev='…'/>: name its TAP (at most 15 characters, not starting with vnet, vif, macvtap or macvlan, which libvirt renames) so that the switch port exists before QEMU opens it"
    )]
    NoTarget { index: usize, mac: String },
    #[error(
        "interface {target:?}: libvirt replaces target names starting with {prefix:?} by generated ones; choose another name"
    )]
    ReservedTarget {
        target: String,
        prefix: &'static str,
    },
    #[error("interface target {0:?}: a TAP name for the switch is 1 to 15 of A-Z a-z 0-9 . _ -")]
    BadTarget(String),
    #[error("{kind} interface {index} has no <mac address='…'/>")]
    NoMac { kind: &'static str, index: usize },
    #[error(
        "interface {target:?} (MAC {mac}): no group — give <pc:port mac=\"{mac}\" group=\"…\"/> or a group on <pc:ports>"
    )]
    NoGroup { target: String, mac: String },
    #[error("<pc:port mac=\"{0}\">: no ethernet or vhostuser interface of the domain has that MAC")]
    UnknownMac(String),
    #[error("<pc:port mac=\"{0}\"> appears twice")]
    DuplicateMac(String),
    #[error("{element}: bad {attribute} {value:?}")]
    BadAttribute {
        element: &'static str,
        attribute: &'static str,
        value: String,
    },
    #[error("two interfaces of the domain make the port {0:?}")]
    DuplicateTarget(String),
    #[error(
        "vhostuser interface {index} (MAC {mac}) has no <source type='unix' path='…' mode='client|server'/>"
    )]
    NoSource { index: usize, mac: String },
    #[error(
        "vhostuser interface socket {0:?}: the switch needs an absolute path whose file name (less a .sock suffix) names its port: 1 to 64 of A-Z a-z 0-9 . _ -"
    )]
    BadSocket(String),
    #[error("the domain has {0} <pc:ports> elements in its metadata; give one")]
    SeveralPorts(usize),
}

/// Where a port's group comes from: a group name, an access VLAN, or both (the
/// switch then checks they agree).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Placement {
    group: Option<String>,
    vlan: Option<u16>,
}

impl Placement {
    fn of(node: roxmltree::Node, element: &'static str) -> Result<Placement, PlanError> {
        let group = match node.attribute("group") {
            Some(g) if g.is_empty() => {
                return Err(PlanError::BadAttribute {
                    element,
                    attribute: "group",
                    value: g.into(),
                });
            }
            g => g.map(str::to_string),
        };
        let vlan = match node.attribute("vlan") {
            None => None,
            Some(v) => Some(
                v.parse::<u16>()
                    .ok()
                    .filter(|v| (1..=4094).contains(v))
                    .ok_or_else(|| PlanError::BadAttribute {
                        element,
                        attribute: "vlan",
                        value: v.into(),
                    })?,
            ),
        };
        Ok(Placement { group, vlan })
    }

    fn is_some(&self) -> bool {
        self.group.is_some() || self.vlan.is_some()
    }
}

/// A MAC as libvirt writes it, normalised to lower case; anything else refused.
fn normal_mac(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| mac.to_ascii_lowercase())
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

/// A domain's name, UUID and whether its metadata has our element — all that
/// `release` needs (by then libvirt's XML no longer names the TAPs; the ports'
/// owner finds them, vhost-user ones too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub domain: String,
    pub uuid: String,
    pub ours: bool,
}

/// The [`Identity`] of the domain in `xml`.
pub fn identity(xml: &str) -> Result<Identity, PlanError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| PlanError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let (domain, uuid) = names(root)?;
    Ok(Identity {
        domain,
        uuid,
        ours: !our_elements(root).is_empty(),
    })
}

/// The domain's name and UUID.
fn names(root: roxmltree::Node) -> Result<(String, String), PlanError> {
    if root.tag_name().name() != "domain" {
        return Err(PlanError::NotDomain(root.tag_name().name().into()));
    }
    let text = |name: &'static str| {
        child(root, name)
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .ok_or(PlanError::Missing(name))
    };
    Ok((text("name")?, text("uuid")?))
}

/// The `<pc:ports>` elements of the domain's `<metadata>`.
fn our_elements<'a, 'i>(root: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    child(root, "metadata")
        .map(|m| {
            m.children()
                .filter(|c| {
                    c.is_element()
                        && c.tag_name().namespace() == Some(NAMESPACE)
                        && c.tag_name().name() == "ports"
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The ports `xml` (a domain definition, as libvirt gives its hooks) asks for.
pub fn plan(xml: &str) -> Result<Plan, PlanError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| PlanError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let (domain, uuid) = names(root)?;
    let ours = our_elements(root);
    let meta = match ours.as_slice() {
        [] => {
            return Ok(Plan {
                domain,
                uuid,
                ports: Vec::new(),
            });
        }
        [one] => *one,
        many => return Err(PlanError::SeveralPorts(many.len())),
    };
    let default = Placement::of(meta, "<pc:ports>")?;
    // The per-MAC entries.
    let mut entries: Vec<(String, Placement)> = Vec::new();
    for e in meta
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(NAMESPACE))
        .filter(|c| c.tag_name().name() == "port")
    {
        let raw = e.attribute("mac").unwrap_or_default();
        let mac = normal_mac(raw).ok_or_else(|| PlanError::BadAttribute {
            element: "<pc:port>",
            attribute: "mac",
            value: raw.into(),
        })?;
        if entries.iter().any(|(m, _)| *m == mac) {
            return Err(PlanError::DuplicateMac(mac));
        }
        entries.push((mac, Placement::of(e, "<pc:port>")?));
    }
    let owner: PortOwner = [
        ("domain".to_string(), domain.clone()),
        ("domain_uuid".to_string(), uuid.clone()),
    ]
    .into_iter()
    .collect();
    let mut planner = Planner {
        entries: &entries,
        default: &default,
        owner,
        ports: Vec::new(),
        used_macs: BTreeSet::new(),
    };
    let devices = child(root, "devices").ok_or(PlanError::Missing("devices"))?;
    for (index, iface) in interfaces(devices, "ethernet").enumerate() {
        let mac = interface_mac(iface, "ethernet", index)?;
        let target = child(iface, "target")
            .and_then(|t| t.attribute("dev"))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PlanError::NoTarget {
                index,
                mac: mac.clone(),
            })?
            .to_string();
        let name_ok = target.len() <= 15
            && target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(PlanError::BadTarget(target));
        }
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| target.starts_with(**p)) {
            return Err(PlanError::ReservedTarget { target, prefix });
        }
        let port = NewPort {
            interface: target.clone(),
            ..NewPort::default()
        };
        planner.add(target, mac, port)?;
    }
    for (index, iface) in interfaces(devices, "vhostuser").enumerate() {
        let mac = interface_mac(iface, "vhostuser", index)?;
        let source = child(iface, "source")
            .filter(|s| s.attribute("type") == Some("unix"))
            .ok_or_else(|| PlanError::NoSource {
                index,
                mac: mac.clone(),
            })?;
        let path = source
            .attribute("path")
            .ok_or_else(|| PlanError::NoSource {
                index,
                mac: mac.clone(),
            })?;
        let name = vhost_user_port_name(path).ok_or_else(|| PlanError::BadSocket(path.into()))?;
        // libvirt's mode is QEMU's side of the socket: QEMU as client connects to
        // the switch's listening port, and the other way round.
        let mode = match source.attribute("mode") {
            Some("client") => "server",
            Some("server") => "client",
            other => {
                return Err(PlanError::BadAttribute {
                    element: "<source type='unix'>",
                    attribute: "mode",
                    value: other.unwrap_or_default().into(),
                });
            }
        };
        let port = NewPort {
            vhost_user: Some(VhostUserSocket {
                socket: path.into(),
                mode: Some(mode.into()),
            }),
            ..NewPort::default()
        };
        planner.add(name, mac, port)?;
    }
    let Planner {
        ports, used_macs, ..
    } = planner;
    if let Some((mac, _)) = entries.iter().find(|(m, _)| !used_macs.contains(m)) {
        return Err(PlanError::UnknownMac(mac.clone()));
    }
    Ok(Plan {
        domain,
        uuid,
        ports,
    })
}

/// The `<interface type='KIND'>` elements of `<devices>`, in order.
fn interfaces<'a, 'i>(
    devices: roxmltree::Node<'a, 'i>,
    kind: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    devices.children().filter(move |c| {
        c.is_element() && c.tag_name().name() == "interface" && c.attribute("type") == Some(kind)
    })
}

/// The normalised `<mac address>` of interface `index` of type `kind`.
fn interface_mac(
    iface: roxmltree::Node,
    kind: &'static str,
    index: usize,
) -> Result<String, PlanError> {
    let raw = child(iface, "mac")
        .and_then(|m| m.attribute("address"))
        .ok_or(PlanError::NoMac { kind, index })?;
    normal_mac(raw).ok_or_else(|| PlanError::BadAttribute {
        element: "<mac>",
        attribute: "address",
        value: raw.into(),
    })
}

/// The ports planned so far, and what places them: a `<pc:port>` entry for the
/// interface's MAC, else the domain's default.
struct Planner<'e> {
    entries: &'e [(String, Placement)],
    default: &'e Placement,
    owner: PortOwner,
    ports: Vec<PlannedPort>,
    used_macs: BTreeSet<String>,
}

impl Planner<'_> {
    /// Adds port `name` for the interface of `mac`; `port` says how it attaches.
    fn add(&mut self, name: String, mac: String, port: NewPort) -> Result<(), PlanError> {
        if self.ports.iter().any(|p| p.name == name) {
            return Err(PlanError::DuplicateTarget(name));
        }
        let placement = self
            .entries
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, p)| p.clone())
            .filter(Placement::is_some)
            .or_else(|| Some(self.default.clone()).filter(Placement::is_some))
            .ok_or_else(|| PlanError::NoGroup {
                target: name.clone(),
                mac: mac.clone(),
            })?;
        self.used_macs.insert(mac.clone());
        self.ports.push(PlannedPort {
            name,
            port: NewPort {
                group: placement.group,
                vlan: placement.vlan,
                mac: Some(mac),
                owner: self.owner.clone(),
                ..port
            },
        });
        Ok(())
    }
}

/// The port a vhost-user socket makes: its file name less a `.sock` suffix, when
/// the path is absolute and that is a port name.
fn vhost_user_port_name(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.ends_with('/') {
        return None;
    }
    let file = path.rsplit('/').next()?;
    let name = file.strip_suffix(".sock").unwrap_or(file);
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What libvirt 9.0 gave the `prepare` hook for the lab's domain.
    const PREPARE: &str = include_str!("testdata/prepare.xml");
    /// What it gave the `release` hook of the same domain, after `virsh destroy`.
    const RELEASE: &str = include_str!("testdata/release.xml");

    fn with_metadata(meta: &str) -> String {
        let start = PREPARE.find("<metadata>").unwrap();
        let end = PREPARE.find("</metadata>").unwrap() + "</metadata>".len();
        format!("{}{meta}{}", &PREPARE[..start], &PREPARE[end..])
    }

    fn with_interfaces(ifaces: &str) -> String {
        let start = PREPARE.find("<interface type='ethernet'>").unwrap();
        let end = PREPARE.find("</interface>").unwrap() + "</interface>".len();
        format!("{}{ifaces}{}", &PREPARE[..start], &PREPARE[end..])
    }

    #[test]
    fn the_released_domain_is_known_by_its_uuid_as_libvirt_forgot_its_taps() {
        // libvirt 9.0 drops the managed TAP's name before `release`.
        assert!(!RELEASE.contains("<target dev="));
        assert!(matches!(plan(RELEASE), Err(PlanError::NoTarget { .. })));
        assert_eq!(
            identity(RELEASE).unwrap(),
            Identity {
                domain: "pclexp".into(),
                uuid: "5f869f33-b770-4614-b746-a297d15e0485".into(),
                ours: true,
            }
        );
        assert!(!identity(&with_metadata("")).unwrap().ours);
    }

    #[test]
    fn libvirts_prepare_xml_gives_one_port() {
        {
            let xml = PREPARE;
            let p = plan(xml).unwrap();
            assert_eq!(p.domain, "pclexp");
            assert_eq!(p.uuid, "5f869f33-b770-4614-b746-a297d15e0485");
            assert_eq!(p.ports.len(), 1);
            let port = &p.ports[0];
            assert_eq!(port.name, "pclexp0");
            assert_eq!(port.port.interface, "pclexp0");
            assert_eq!(port.port.group.as_deref(), Some("web"));
            assert_eq!(port.port.vlan, None);
            assert_eq!(port.port.mac.as_deref(), Some("52:54:00:12:34:56"));
            assert_eq!(port.port.owner["domain"], "pclexp");
            assert_eq!(
                port.port.owner["domain_uuid"],
                "5f869f33-b770-4614-b746-a297d15e0485"
            );
            assert!(!port.port.may_exist && !port.port.create_tap);
        }
    }

    #[test]
    fn a_domain_without_our_metadata_is_not_ours() {
        let xml = with_metadata("<metadata><x:y xmlns:x=\"urn:other\"/></metadata>");
        assert_eq!(plan(&xml).unwrap().ports, vec![]);
        let xml = with_metadata("");
        assert_eq!(plan(&xml).unwrap().ports, vec![]);
        // Our element's name in another namespace is not ours either.
        let xml =
            with_metadata("<metadata><pc:ports xmlns:pc=\"urn:other\" group=\"web\"/></metadata>");
        assert_eq!(plan(&xml).unwrap().ports, vec![]);
    }

    #[test]
    fn the_group_comes_from_the_mac_entry_else_the_default_and_vlans_select_too() {
        let two = "<interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='web1-a'/></interface>\
                   <interface type='network'><mac address='52:54:00:00:00:09'/><source network='default'/></interface>\
                   <interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='web1-b'/></interface>";
        let meta = "<metadata><pc:ports xmlns:pc=\"https://portcullis.dev/libvirt/1\" group=\"web\">\
                    <pc:port mac=\"52:54:00:00:00:02\" vlan=\"20\"/></pc:ports></metadata>";
        let xml = with_metadata(meta);
        let start = xml.find("<interface type='ethernet'>").unwrap();
        let end = xml.find("</interface>").unwrap() + "</interface>".len();
        let xml = format!("{}{two}{}", &xml[..start], &xml[end..]);
        let p = plan(&xml).unwrap();
        let got: Vec<_> = p
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.port.group.as_deref(),
                    p.port.vlan,
                    p.port.mac.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("web1-a", Some("web"), None, Some("52:54:00:00:00:01")),
                ("web1-b", None, Some(20), Some("52:54:00:00:00:02")),
            ],
            "the network interface is not ours"
        );
    }

    #[test]
    fn what_would_leave_a_nic_outside_the_policy_is_refused() {
        let ns = "xmlns:pc=\"https://portcullis.dev/libvirt/1\"";
        let cases: Vec<(String, PlanError)> = vec![
            (
                with_metadata(&format!("<metadata><pc:ports {ns}/></metadata>")),
                PlanError::NoGroup {
                    target: "pclexp0".into(),
                    mac: "52:54:00:12:34:56".into(),
                },
            ),
            (
                with_metadata(&format!(
                    "<metadata><pc:ports {ns} group=\"web\"><pc:port mac=\"52:54:00:99:99:99\" group=\"db\"/></pc:ports></metadata>"
                )),
                PlanError::UnknownMac("52:54:00:99:99:99".into()),
            ),
            (
                with_metadata(&format!(
                    "<metadata><pc:ports {ns}><pc:port mac=\"52:54:00:12:34:56\" group=\"a\"/><pc:port mac=\"52:54:00:12:34:56\" group=\"b\"/></pc:ports></metadata>"
                )),
                PlanError::DuplicateMac("52:54:00:12:34:56".into()),
            ),
            (
                with_metadata(&format!(
                    "<metadata><pc:ports {ns} group=\"web\"/><pc:ports {ns} group=\"db\"/></metadata>"
                )),
                PlanError::SeveralPorts(2),
            ),
            (
                with_metadata(&format!(
                    "<metadata><pc:ports {ns} vlan=\"4095\"/></metadata>"
                )),
                PlanError::BadAttribute {
                    element: "<pc:ports>",
                    attribute: "vlan",
                    value: "4095".into(),
                },
            ),
            (
                with_metadata(&format!(
                    "<metadata><pc:ports {ns}><pc:port mac=\"52-54-00-12-34-56\" group=\"web\"/></pc:ports></metadata>"
                )),
                PlanError::BadAttribute {
                    element: "<pc:port>",
                    attribute: "mac",
                    value: "52-54-00-12-34-56".into(),
                },
            ),
            (
                with_interfaces(
                    "<interface type='ethernet'><mac address='52:54:00:12:34:56'/></interface>",
                ),
                PlanError::NoTarget {
                    index: 0,
                    mac: "52:54:00:12:34:56".into(),
                },
            ),
            (
                with_interfaces(
                    "<interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='vnet3'/></interface>",
                ),
                PlanError::ReservedTarget {
                    target: "vnet3".into(),
                    prefix: "vnet",
                },
            ),
            (
                with_interfaces("<interface type='ethernet'><target dev='t0'/></interface>"),
                PlanError::NoMac {
                    kind: "ethernet",
                    index: 0,
                },
            ),
            (
                with_interfaces(
                    "<interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='t0'/></interface>\
                     <interface type='ethernet'><mac address='52:54:00:12:34:57'/><target dev='t0'/></interface>",
                ),
                PlanError::DuplicateTarget("t0".into()),
            ),
            (
                with_interfaces(
                    "<interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='a/b'/></interface>",
                ),
                PlanError::BadTarget("a/b".into()),
            ),
            ("<network/>".into(), PlanError::NotDomain("network".into())),
        ];
        for (xml, want) in cases {
            assert_eq!(plan(&xml), Err(want), "{xml}");
        }
        assert!(matches!(plan("<domain"), Err(PlanError::Xml(_))));
        assert!(matches!(
            plan("<domain><uuid>u</uuid></domain>"),
            Err(PlanError::Missing("name"))
        ));
    }

    const NS: &str = "xmlns:pc=\"https://portcullis.dev/libvirt/1\"";

    fn vhostuser(path: &str, mode: &str, mac: &str) -> String {
        format!(
            "<interface type='vhostuser'><mac address='{mac}'/><source type='unix' path='{path}' mode='{mode}'/><model type='virtio'/></interface>"
        )
    }

    #[test]
    fn a_vhostuser_interface_is_a_vhost_user_port_in_the_opposite_mode() {
        let ifaces = format!(
            "{}{}<interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='pclexp0'/></interface>",
            vhostuser(
                "/run/portcullis/web1-eth0.sock",
                "client",
                "52:54:00:00:00:11"
            ),
            vhostuser("/run/qemu/web1-eth1", "server", "52:54:00:00:00:12"),
        );
        let xml = with_interfaces(&ifaces);
        let meta = format!(
            "<metadata><pc:ports {NS} group=\"db\"><pc:port mac=\"52:54:00:00:00:11\" group=\"web\"/></pc:ports></metadata>"
        );
        let start = xml.find("<metadata>").unwrap();
        let end = xml.find("</metadata>").unwrap() + "</metadata>".len();
        let xml = format!("{}{meta}{}", &xml[..start], &xml[end..]);
        let p = plan(&xml).unwrap();
        let got: Vec<_> = p
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.port.interface.as_str(),
                    p.port.vhost_user.as_ref().map(|v| v.socket.as_str()),
                    p.port.vhost_user.as_ref().and_then(|v| v.mode.as_deref()),
                    p.port.group.as_deref(),
                    p.port.mac.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "pclexp0",
                    "pclexp0",
                    None,
                    None,
                    Some("db"),
                    Some("52:54:00:12:34:56")
                ),
                (
                    "web1-eth0",
                    "",
                    Some("/run/portcullis/web1-eth0.sock"),
                    Some("server"),
                    Some("web"),
                    Some("52:54:00:00:00:11")
                ),
                (
                    "web1-eth1",
                    "",
                    Some("/run/qemu/web1-eth1"),
                    Some("client"),
                    Some("db"),
                    Some("52:54:00:00:00:12")
                ),
            ],
            "QEMU client → switch server, QEMU server → switch client"
        );
        assert_eq!(p.ports[1].port.owner["domain"], "pclexp");
        assert!(!p.ports[1].port.create_tap);
    }

    #[test]
    fn a_vhostuser_interface_the_switch_cannot_serve_is_refused() {
        let ok_mac = "52:54:00:12:34:56";
        let cases: Vec<(String, PlanError)> = vec![
            (
                vhostuser("relative.sock", "client", ok_mac),
                PlanError::BadSocket("relative.sock".into()),
            ),
            (
                vhostuser("/run/bad name.sock", "client", ok_mac),
                PlanError::BadSocket("/run/bad name.sock".into()),
            ),
            (
                vhostuser("/run/.sock", "client", ok_mac),
                PlanError::BadSocket("/run/.sock".into()),
            ),
            (
                vhostuser("/run/vm.sock", "both", ok_mac),
                PlanError::BadAttribute {
                    element: "<source type='unix'>",
                    attribute: "mode",
                    value: "both".into(),
                },
            ),
            (
                format!("<interface type='vhostuser'><mac address='{ok_mac}'/><model type='virtio'/></interface>"),
                PlanError::NoSource {
                    index: 0,
                    mac: ok_mac.into(),
                },
            ),
            (
                format!("<interface type='vhostuser'><mac address='{ok_mac}'/><source type='unix' mode='client'/></interface>"),
                PlanError::NoSource {
                    index: 0,
                    mac: ok_mac.into(),
                },
            ),
            (
                "<interface type='vhostuser'><source type='unix' path='/run/vm.sock' mode='client'/></interface>".into(),
                PlanError::NoMac {
                    kind: "vhostuser",
                    index: 0,
                },
            ),
            (
                format!(
                    "{}{}",
                    vhostuser("/a/vm.sock", "client", ok_mac),
                    vhostuser("/b/vm.sock", "client", "52:54:00:12:34:57")
                ),
                PlanError::DuplicateTarget("vm".into()),
            ),
        ];
        for (ifaces, want) in cases {
            let xml = with_interfaces(&ifaces);
            assert_eq!(plan(&xml), Err(want), "{ifaces}");
        }
    }

    #[test]
    fn messages_say_what_to_write() {
        let e = PlanError::NoTarget {
            index: 0,
            mac: "52:54:00:12:34:56".into(),
        }
        .to_string();
        assert!(e.contains("<target dev='…'/>") && e.contains("vnet"), "{e}");
        let e = PlanError::NoGroup {
            target: "t0".into(),
            mac: "52:54:00:12:34:56".into(),
        }
        .to_string();
        assert!(
            e.contains("<pc:port mac=\"52:54:00:12:34:56\" group="),
            "{e}"
        );
    }
}
