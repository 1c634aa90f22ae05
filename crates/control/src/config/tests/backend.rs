//! `backend` on `[[host.port]]` and `[host.uplink_backend]`: compiled per port,
//! AF_PACKET by default, every mistake a located error.

use super::*;

fn compiled(src: &str) -> CompiledConfig {
    parse_str(src, P, None).unwrap().compile().unwrap()
}

#[test]
fn default_is_af_packet_everywhere() {
    let c = compiled(BASE);
    assert_eq!(c.backends, vec![Backend::AfPacket, Backend::AfPacket]);
}

#[test]
fn guest_port_and_uplink_backends_compile_in_port_order() {
    let src = BASE.replace(
        "[host.uplinks]\nuplink1 = \"eth0\"\n",
        "[host.uplinks]\nuplink1 = \"eth0\"\n\n[host.uplink_backend]\nuplink1 = \"af_xdp\"\n",
    );
    let c = compiled(&src);
    assert_eq!(c.backends, vec![Backend::AfXdp, Backend::AfPacket]);

    let src = format!("{BASE}backend = \"af_xdp\"\n");
    let c = compiled(&src);
    assert_eq!(c.backends, vec![Backend::AfPacket, Backend::AfXdp]);
    let src = format!("{BASE}backend = \"af_packet\"\n");
    assert_eq!(compiled(&src).backends, vec![Backend::AfPacket; 2]);
}

#[test]
fn unknown_backend_names_are_located() {
    let bad = format!("{BASE}backend = \"dpdk\"\n");
    let e = errors_of(&bad);
    assert_eq!(e.len(), 1, "{e:?}");
    let text = e[0].to_string();
    assert!(
        text.starts_with(&format!("{P}:{}:", line_of(&bad, "backend = \"dpdk\""))),
        "{text}"
    );
    assert!(text.contains("host.port[0].backend"), "{text}");
    assert!(text.contains("af_packet, af_xdp"), "{text}");

    let bad = BASE.replace(
        "[host.uplinks]\nuplink1 = \"eth0\"\n",
        "[host.uplinks]\nuplink1 = \"eth0\"\n\n[host.uplink_backend]\nuplink1 = \"AF_XDP\"\n",
    );
    let text = errors_of(&bad)[0].to_string();
    assert!(
        text.starts_with(&format!("{P}:{}:", line_of(&bad, "= \"AF_XDP\""))),
        "{text}"
    );
    assert!(text.contains("host.uplink_backend.uplink1"), "{text}");
}

#[test]
fn a_backend_for_an_unbound_uplink_is_located() {
    let bad = BASE.replace(
        "[host.uplinks]\nuplink1 = \"eth0\"\n",
        "[host.uplinks]\nuplink1 = \"eth0\"\n\n[host.uplink_backend]\nuplink9 = \"af_xdp\"\n",
    );
    let e = errors_of(&bad);
    let text = e[0].to_string();
    assert!(
        text.starts_with(&format!("{P}:{}:", line_of(&bad, "uplink9 = "))),
        "{text}"
    );
    assert!(text.contains("host.uplink_backend.uplink9"), "{text}");
    assert!(text.contains("uplink1"), "names the bound uplinks: {text}");
}

#[test]
fn a_backend_of_the_wrong_type_is_located() {
    let bad = format!("{BASE}backend = 1\n");
    let text = errors_of(&bad)[0].to_string();
    assert!(
        text.starts_with(&format!("{P}:{}:", line_of(&bad, "backend = 1"))),
        "{text}"
    );
}

proptest! {
    /// Any string is either a known backend (and round-trips) or a located error,
    /// never a panic.
    #[test]
    fn any_backend_name_is_accepted_or_located(name in "[a-zA-Z_ \"\\\\]{0,12}") {
        let quoted = toml::Value::String(name.clone()).to_string();
        let src = format!("{BASE}backend = {quoted}\n");
        match parse_str(&src, P, None) {
            Ok(c) => {
                let b = Backend::from_name(&name).expect("accepted names are known");
                prop_assert_eq!(b.name(), name.as_str());
                prop_assert_eq!(c.compile().unwrap().backends[1], b);
            }
            Err(e) => {
                prop_assert!(Backend::from_name(&name).is_none());
                let text = e.into_vec()[0].to_string();
                prop_assert!(text.contains("host.port[0].backend"), "{}", text);
            }
        }
    }
}
