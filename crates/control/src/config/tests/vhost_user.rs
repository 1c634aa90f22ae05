//! `vhost_user = { socket, mode }` on `[[host.port]]`: compiled per port instead of
//! an interface, every mistake a located error.

use super::*;

const VU: &str = "\n[[host.port]]\nname = \"vm9\"\nvhost_user = { socket = \"/run/portcullis/vm9.sock\", mode = \"client\" }\nport_group = \"web\"\n";

#[test]
fn a_vhost_user_port_compiles_with_its_socket_and_no_interface() {
    let c = parse_str(&format!("{BASE}{VU}"), P, None)
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(c.interfaces, vec!["eth0", "tap1", ""]);
    assert_eq!(
        c.vhost_user,
        vec![
            None,
            None,
            Some(VhostUser {
                socket: "/run/portcullis/vm9.sock".into(),
                mode: VhostUserMode::Client,
            })
        ]
    );
    assert_eq!(c.interface_keys[2], "host.port[1].vhost_user.socket");
    let server = VU.replace(", mode = \"client\"", "");
    let c = parse_str(&format!("{BASE}{server}"), P, None)
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(
        c.vhost_user[2].as_ref().unwrap().mode,
        VhostUserMode::Server
    );
}

#[test]
fn vhost_user_mistakes_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "mode = \"client\"",
            "mode = \"peer\"",
            "host.port[1].vhost_user.mode",
        ),
        (
            "socket = \"/run/portcullis/vm9.sock\"",
            "socket = \"vm9.sock\"",
            "host.port[1].vhost_user.socket",
        ),
        (
            "name = \"vm9\"\n",
            "name = \"vm9\"\ninterface = \"tap9\"\n",
            "host.port[1].vhost_user",
        ),
        (
            "name = \"vm9\"\n",
            "name = \"vm9\"\ntap = true\n",
            "host.port[1].tap",
        ),
        (
            "name = \"vm9\"\n",
            "name = \"vm9\"\nbackend = \"af_xdp\"\n",
            "host.port[1].backend",
        ),
    ];
    for (from, to, key) in cases {
        let bad = format!("{BASE}{}", VU.replace(from, to));
        let e = errors_of(&bad);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        let text = e[0].to_string();
        assert!(text.contains(key), "{key}: {text}");
        assert!(text.starts_with(&format!("{P}:")), "located: {text}");
    }
    // Neither an interface nor a socket.
    let bad = format!("{BASE}\n[[host.port]]\nname = \"vm9\"\nport_group = \"web\"\n");
    let text = errors_of(&bad)[0].to_string();
    assert!(
        text.contains("host.port[1]") && text.contains("vhost_user"),
        "{text}"
    );
    // Two ports on one socket.
    let bad = format!("{BASE}{VU}{}", VU.replace("vm9\"\n", "vm8\"\n"));
    let text = errors_of(&bad)[0].to_string();
    assert!(text.contains("host.port[2].vhost_user.socket"), "{text}");
    assert!(text.contains("already used"), "{text}");
}
