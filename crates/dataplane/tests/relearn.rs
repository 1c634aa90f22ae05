//! A guest re-created behind its port (a VM or container restarted with a new
//! random MAC): `Switch::forget_learned_mac` makes a port without a configured MAC
//! learn its first frame's MAC afresh, so the new guest is not a forger; a port
//! with a configured MAC keeps it, and a guest using another MAC is still dropped.

use portcullis_dataplane::*;

mod support;
use support::*;

const GUEST: PortId = PortId(1);
const FIXED: PortId = PortId(2);

fn switch() -> Switch {
    let spec = switch_spec(
        "relearn",
        vec![
            trunk("uplink", &[10], Some(10)),
            access("learned", 10, None),
            access("fixed", 10, Some(mac(2))),
        ],
    );
    Switch::new(&spec, Timestamp(0)).unwrap()
}

fn local_macs(sw: &Switch, port: PortId) -> Vec<MacAddr> {
    sw.mac_table()
        .entries(Timestamp::from_secs(10))
        .into_iter()
        .filter(|(_, _, e)| e.port == port)
        .map(|(_, m, _)| m)
        .collect()
}

#[test]
fn a_recreated_guest_is_learned_afresh_and_a_configured_mac_stays() {
    let mut sw = switch();
    let (old, new) = (mac(0x41), mac(0x42));

    // The first guest's first frame teaches the port its MAC; another MAC is forged.
    assert!(
        send_secs(&mut sw, 1, GUEST, &frame(MacAddr::BROADCAST, old))
            .drop_reason()
            .is_none()
    );
    assert_eq!(sw.ports()[1].initial_mac, Some(old));
    assert_eq!(
        send_secs(&mut sw, 2, GUEST, &frame(MacAddr::BROADCAST, new)).drop_reason(),
        Some(DropReason::ForgedTransmit)
    );
    events(&mut sw);

    // Its interface is re-created: the learned MAC goes, with its table entry.
    assert_eq!(
        sw.forget_learned_mac(GUEST, Timestamp::from_secs(3)),
        Ok(Some(old))
    );
    assert_eq!(
        events(&mut sw),
        vec![EventKind::LearnedMacForgotten {
            port: GUEST,
            mac: old
        }]
    );
    let p = &sw.ports()[1];
    assert_eq!((p.initial_mac, p.effective_mac), (None, None));
    assert!(
        local_macs(&sw, GUEST).is_empty(),
        "no entry for the old guest"
    );

    // The new guest's first frame is learned, not dropped.
    assert!(
        send_secs(&mut sw, 4, GUEST, &frame(MacAddr::BROADCAST, new))
            .drop_reason()
            .is_none()
    );
    assert_eq!(sw.ports()[1].initial_mac, Some(new));
    assert_eq!(local_macs(&sw, GUEST), vec![new]);

    // A configured MAC is configuration: nothing is forgotten, forgery stays forgery.
    assert_eq!(
        sw.forget_learned_mac(FIXED, Timestamp::from_secs(5)),
        Ok(None)
    );
    assert_eq!(sw.ports()[2].initial_mac, Some(mac(2)));
    assert_eq!(
        send_secs(&mut sw, 6, FIXED, &frame(MacAddr::BROADCAST, mac(0x43))).drop_reason(),
        Some(DropReason::ForgedTransmit)
    );
    // Uplinks have nothing to forget; an unknown port is an error, not a panic.
    assert_eq!(
        sw.forget_learned_mac(PortId(0), Timestamp::from_secs(7)),
        Ok(None)
    );
    assert!(
        sw.forget_learned_mac(PortId(9), Timestamp::from_secs(7))
            .is_err()
    );
}
