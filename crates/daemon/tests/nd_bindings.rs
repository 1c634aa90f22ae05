//! ND inspection's bindings through the whole daemon (in-memory ports, no root):
//! a guest's DAD and its first packet from a new address are held until their `nd`
//! bindings are committed, then delivered; the bindings are in `/v1/bindings` and in
//! the store, survive a restart, and a binding in use with less than half its
//! lifetime left is refreshed — its record rewritten with the new lease end, nothing
//! held (the `BindingRefreshed` event's path through the runtime).

mod common;

use axum::http::{Method, StatusCode};
use common::{ApiHarness, ROOT, eth};
use portcullis_daemon::bindings_store::{BindingOp, BindingRecord, BindingStore};
use portcullis_dataplane::bindings::BindingSource;
use portcullis_dataplane::wire::icmpv6::{self, msg_type};
use portcullis_dataplane::wire::ipv6::{self, next_header};
use portcullis_dataplane::wire::nd::{NdEmit, NdMessage, solicited_node};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "savi"

[[port_group]]
name = "web"
vlan = 10
nd_inspection = { binding_lifetime_secs = 60 }
ipv6_source_guard = "ip-mac"

[[host.port]]
name = "vm1"
interface = "mem-vm1"
port_group = "web"
mac = "52:54:00:00:00:01"

[[host.port]]
name = "vm2"
interface = "mem-vm2"
port_group = "web"
mac = "52:54:00:00:00:02"
"#;

const VM1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const VM2: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

fn addr(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0x10, 0, 0, 0, last)
}

/// DAD for `target`, from vm1, as an Ethernet frame.
fn dad(target: Ipv6Addr) -> Vec<u8> {
    let e = NdEmit {
        src: Ipv6Addr::UNSPECIFIED,
        dst: solicited_node(&target),
        message: NdMessage::NeighborSolicitation { target },
        options: &[],
    };
    let mut l3 = vec![0; e.buffer_len()];
    e.emit(&mut l3).unwrap();
    let s = solicited_node(&target).octets();
    eth(
        [0x33, 0x33, s[12], s[13], s[14], s[15]],
        VM1,
        None,
        ipv6::ETHERTYPE,
        &l3,
    )
}

/// An echo request from vm1's `src` to vm2's address.
fn echo(src: Ipv6Addr) -> Vec<u8> {
    let dst = addr(2);
    let mut msg = vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1];
    icmpv6::fill_checksum(&mut msg, &src, &dst).unwrap();
    let mut l3 = vec![0; ipv6::HEADER_LEN];
    ipv6::emit_header(
        &mut l3,
        msg.len() as u16,
        next_header::ICMPV6,
        64,
        &src,
        &dst,
    )
    .unwrap();
    l3.extend_from_slice(&msg);
    eth(VM2, VM1, None, ipv6::ETHERTYPE, &l3)
}

impl ApiHarness {
    /// The `nd` bindings as (ip, port).
    fn nd_bindings(&self) -> Vec<(String, String)> {
        let (s, v) = self.call(ROOT, Method::GET, "/v1/bindings", None, &[]);
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut out: Vec<(String, String)> = v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["source"] == "nd")
            .map(|b| {
                let f = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                (f("ip"), f("port"))
            })
            .collect();
        out.sort();
        out
    }

    fn wait_for_bindings(&self, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, p)| (a.to_string(), p.to_string()))
            .collect();
        let t0 = Instant::now();
        loop {
            let got = self.nd_bindings();
            if got == want {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "{got:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for frames on port `i`; returns them.
    fn delivered(&self, i: usize, n: usize) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(self.daemon.handles[i].take_transmitted());
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{} of {n}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }
}

fn stored(dir: &std::path::Path) -> Vec<BindingRecord> {
    BindingStore::open(dir)
        .unwrap()
        .load_live(portcullis_daemon::held::unix_now())
        .unwrap()
}

#[test]
fn nd_bindings_are_held_until_committed_survive_a_restart_and_refresh_on_use() {
    let h = ApiHarness::start("nd-bindings", CONFIG, "savi.toml");
    // DAD for a stable address, then a first packet from a temporary one: each held,
    // then delivered once its binding is committed.
    let claim = dad(addr(0xa));
    h.daemon.handles[0].inject(&claim, None);
    h.wait_for_bindings(&[("fd00:198:18:10::a", "vm1")]);
    assert_eq!(h.delivered(1, 1), vec![claim]);
    let first = echo(addr(0x7e));
    h.daemon.handles[0].inject(&first, None);
    h.wait_for_bindings(&[("fd00:198:18:10::7e", "vm1"), ("fd00:198:18:10::a", "vm1")]);
    assert_eq!(h.delivered(1, 1), vec![first]);

    // Restart: the bindings come back from the store. Meanwhile the stable
    // address's record is made to end in 20 s (less than half of 60).
    let h = h.restart(CONFIG, "savi.toml", |dir| {
        let mut recs = stored(dir);
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(|r| r.source == BindingSource::Nd));
        let r = recs
            .iter_mut()
            .find(|r| r.ip == IpAddr::V6(addr(0xa)))
            .unwrap();
        r.lease_end_unix = Some(portcullis_daemon::held::unix_now() + 20);
        BindingStore::open(dir)
            .unwrap()
            .apply(&[BindingOp::Upsert(r.clone())])
            .unwrap();
    });
    h.wait_for_bindings(&[("fd00:198:18:10::7e", "vm1"), ("fd00:198:18:10::a", "vm1")]);
    // vm1 uses it: forwarded at once (not held), and its record rewritten.
    let use_it = echo(addr(0xa));
    h.daemon.handles[0].inject(&use_it, None);
    assert_eq!(h.delivered(1, 1), vec![use_it]);
    // Nothing waits for the rewrite (the group committer makes it): give it time.
    std::thread::sleep(Duration::from_millis(300));
    let h = h.restart(CONFIG, "savi.toml", |dir| {
        let now = portcullis_daemon::held::unix_now();
        let r = stored(dir)
            .into_iter()
            .find(|r| r.ip == IpAddr::V6(addr(0xa)))
            .unwrap();
        let end = r.lease_end_unix.unwrap();
        assert!(
            end >= now + 50,
            "refreshed to about now + 60 s: {end} vs {now}"
        );
    });
    h.wait_for_bindings(&[("fd00:198:18:10::7e", "vm1"), ("fd00:198:18:10::a", "vm1")]);
}
