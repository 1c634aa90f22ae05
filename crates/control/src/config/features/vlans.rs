//! A port group's VLANs, whole: `vlan = N` (access) or `vlans = [...]` with
//! `native_vlan` (a guest-tagging trunk) — the model, its conversion, its check,
//! its VLAN mode in the spec, and its flattening for diff, with the canonical VLAN
//! list text the uplink policy's `allowed_vlans` shares.
//!
//! Invariant: a group has exactly one of `vlan` and `vlans`; a trunk lists at
//! least one VLAN; a group whose VLANs did not convert is poisoned, so checks that
//! need its VLANs skip it rather than judge a placeholder.

use crate::config::check::Checker;
use crate::config::flat::{Flat, opt, put};
use crate::config::value::{Converter, RawVlan, VlanRange, vlan_set};
use portcullis_dataplane::{Vid, VlanMode};

// ---- model --------------------------------------------------------------------------

/// How a port group's ports carry VLANs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupVlan {
    /// `vlan = N`: untagged frames of one VLAN.
    Access(Vid),
    /// `vlans = [...]` (+ `native_vlan`): a guest-tagging trunk (VGT).
    Trunk {
        vlans: Vec<VlanRange>,
        native_vlan: Option<Vid>,
    },
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// The VLAN setting of the port group `name` at `key` (`port_group[i]`); `None`
    /// when it is missing, doubled or invalid (already an error).
    pub(crate) fn group_vlan(
        &mut self,
        key: &str,
        name: &str,
        vlan: Option<i64>,
        vlans: Option<Vec<RawVlan>>,
        native_vlan: Option<i64>,
    ) -> Option<GroupVlan> {
        match (vlan, vlans) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{key}.vlans"),
                    "a port group has either `vlan` (access) or `vlans` (guest-tagging trunk), not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    key,
                    format!(
                        "port group {:?} needs `vlan = <id>` (access) or `vlans = [...]` (guest-tagging trunk)",
                        name
                    ),
                );
                None
            }
            (Some(v), None) => {
                if native_vlan.is_some() {
                    self.error(
                        &format!("{key}.native_vlan"),
                        "native_vlan applies only to a guest-tagging trunk (`vlans = [...]`); an access group's `vlan` is already untagged",
                    );
                }
                self.vid(&format!("{key}.vlan"), v).map(GroupVlan::Access)
            }
            (None, Some(list)) => {
                let vlans = self.vlan_list(&format!("{key}.vlans"), &list);
                let native_vlan =
                    native_vlan.and_then(|v| self.vid(&format!("{key}.native_vlan"), v));
                Some(GroupVlan::Trunk { vlans, native_vlan })
            }
        }
    }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// A trunk group at `key` lists at least one VLAN.
    pub(crate) fn group_vlan(&mut self, key: &str, vlan: &GroupVlan) {
        if let GroupVlan::Trunk { vlans, native_vlan } = vlan
            && vlans.is_empty()
        {
            let msg = match native_vlan {
                Some(n) => format!(
                    "`vlans` is empty: list the tagged VLANs, or use `vlan = {n}` for an access group"
                ),
                None => "`vlans` is empty: list at least one VLAN".to_owned(),
            };
            self.error(&format!("{key}.vlans"), msg);
        }
    }
}

// ---- spec ---------------------------------------------------------------------------

/// The VLAN mode of a group's ports.
pub(crate) fn mode(v: &GroupVlan) -> VlanMode {
    match v {
        GroupVlan::Access(vid) => VlanMode::Access(*vid),
        GroupVlan::Trunk { vlans, native_vlan } => VlanMode::Trunk {
            allowed: vlan_set(vlans),
            native: *native_vlan,
        },
    }
}

// ---- flattening for diff ------------------------------------------------------------

pub(crate) fn flatten(f: &mut Flat, prefix: &str, v: &GroupVlan) {
    match v {
        GroupVlan::Access(vid) => put(f, &format!("{prefix}.vlan"), vid.get()),
        GroupVlan::Trunk { vlans, native_vlan } => {
            put(f, &format!("{prefix}.vlans"), vlan_list(vlans));
            put(
                f,
                &format!("{prefix}.native_vlan"),
                opt(native_vlan.map(|v| v.get())),
            );
        }
    }
}

/// A VLAN list as the set it stands for: ascending, each run of consecutive VLANs
/// one range (`[10, 20, 100-103]`).
pub(crate) fn vlan_list(ranges: &[VlanRange]) -> String {
    let mut vids: Vec<portcullis_dataplane::Vid> =
        ranges.iter().flat_map(VlanRange::vids).collect();
    vids.sort_unstable();
    vids.dedup();
    format!("[{}]", portcullis_dataplane::vid_list(vids, ", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn vlan_lists_are_canonical_sets() {
        let r = |a: u16, b: u16| VlanRange {
            first: portcullis_dataplane::Vid::new(a).unwrap(),
            last: portcullis_dataplane::Vid::new(b).unwrap(),
        };
        assert_eq!(
            vlan_list(&[r(103, 103), r(10, 10), r(100, 102), r(20, 20), r(11, 11)]),
            "[10-11, 20, 100-103]"
        );
        assert_eq!(vlan_list(&[]), "[]");
    }
}
