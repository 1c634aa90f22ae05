//! TAP backend against real TAP interfaces (needs root). The TAPs live in the host
//! namespace only for the duration of a test; a guard deletes them even on failure.

mod common;

use std::time::{Duration, Instant};

use common::{collect, has_marker, marker, require_root, test_frame};
use portcullis_io::afpacket::{AfPacketOptions, open_af_packet};
use portcullis_io::tap::{create_persistent_tap, create_tap, delete_persistent_tap, open_tap};
use portcullis_io::{
    IoError, RxQueue, TxQueue, VlanTag, interface_exists, set_link_down, set_link_up,
};

const WAIT: Duration = Duration::from_secs(2);

/// Deletes the TAP on drop (it may already be gone).
struct TapGuard(String);

impl TapGuard {
    fn new(tag: char) -> TapGuard {
        require_root();
        let name = format!("piot{}{tag}", std::process::id());
        common::ip_quiet(&["link", "del", &name]);
        TapGuard(name)
    }
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        common::ip_quiet(&["link", "del", &self.0]);
    }
}

fn wait_gone(name: &str) -> bool {
    let deadline = Instant::now() + WAIT;
    while interface_exists(name) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn frames_flow_both_ways_through_a_tap() {
    let guard = TapGuard::new('a');
    let name = guard.0.clone();
    let (mut trx, mut ttx) = create_tap(&name).unwrap();
    assert!(interface_exists(&name));
    common::disable_ipv6(&name);
    set_link_up(&name).unwrap();
    let (mut arx, mut atx) = open_af_packet(&name, &AfPacketOptions::default()).unwrap();
    let m = marker(b't');

    // Kernel transmits on the TAP netdev (AF_PACKET send) -> read from the tun fd.
    let (h1, b1) = test_frame(&m, 1, 46);
    let tag = VlanTag::dot1q(30, 1);
    let (h2, b2) = test_frame(&m, 2, 60);
    atx.push(&h1, None, &b1).unwrap();
    atx.push(&h2, Some(tag), &b2).unwrap();
    atx.flush().unwrap();
    let got = collect(&mut trx, 2, WAIT, |d, _| {
        has_marker(d, &m) || (d.len() > 30 && has_marker(&[&d[..12], &d[16..]].concat(), &m))
    });
    assert_eq!(
        got.len(),
        2,
        "frames sent on the TAP netdev not read from the fd"
    );
    assert_eq!(got[0], ([&h1[..], &b1].concat(), None));
    assert_eq!(
        got[1],
        ([&h2[..], &tag.to_bytes(), &b2].concat(), None),
        "TAP frames carry their tag in-band"
    );

    // Written to the tun fd -> received by the kernel on the TAP netdev.
    let (h3, b3) = test_frame(&m, 3, 46);
    let tag4 = VlanTag::dot1q(40, 0);
    let (h4, b4) = test_frame(&m, 4, 100);
    ttx.push(&h3, None, &b3).unwrap();
    ttx.push(&h4, Some(tag4), &b4).unwrap();
    ttx.flush().unwrap();
    let got = collect(&mut arx, 2, WAIT, |d, _| has_marker(d, &m));
    assert_eq!(
        got.len(),
        2,
        "frames written to the fd not received on the netdev"
    );
    assert_eq!(got[0], ([&h3[..], &b3].concat(), None));
    assert_eq!(got[1], ([&h4[..], &b4].concat(), Some(tag4)));
    assert_eq!(ttx.stats().sent, 2);
    assert!(trx.stats().frames >= 2);

    // Limits are errors; a TAP that is down refuses frames without failing the flush.
    assert_eq!(
        ttx.push(&h3, None, &vec![0; 70_000]),
        Err(portcullis_io::TxError::TooBig)
    );
    set_link_down(&name).unwrap();
    ttx.push(&h3, None, &b3).unwrap();
    ttx.flush().unwrap();
    let s = ttx.stats();
    assert_eq!((s.sent + s.send_errors, s.too_big), (3, 1), "{s:?}");

    assert!(matches!(
        create_tap(&name),
        Err(IoError::InterfaceExists(n)) if n == name
    ));
    drop((trx, ttx, arx, atx));
    assert!(
        wait_gone(&name),
        "a non-persistent TAP goes away with its fd"
    );
}

#[test]
fn a_persistent_tap_can_be_attached_later() {
    let guard = TapGuard::new('p');
    let name = guard.0.clone();
    create_persistent_tap(&name, None).unwrap();
    assert!(interface_exists(&name));
    {
        let (mut rx, _tx) = open_tap(&name).unwrap();
        assert!(rx.fd().is_some());
        assert!(rx.recv().unwrap().is_empty(), "recv never blocks");
        let busy = open_tap(&name).unwrap_err();
        assert_eq!(busy.raw_os_error(), Some(libc::EBUSY), "{busy}");
        assert!(busy.to_string().contains(&name), "{busy}");
    }
    assert!(interface_exists(&name), "persistent TAP survives its fd");
    delete_persistent_tap(&name).unwrap();
    assert!(wait_gone(&name));
    assert!(matches!(
        open_tap(&name),
        Err(IoError::NoSuchInterface(n)) if n == name
    ));
}

#[test]
fn a_persistent_tap_held_for_a_moment_by_a_forked_child_is_still_deleted() {
    // Any thread that spawns a program forks first: until the child execs, it holds
    // a copy of the TAP's descriptor (O_CLOEXEC closes it only at exec). Here a child
    // that never execs holds it for 100 ms, as a slow fork-to-exec would.
    let guard = TapGuard::new('f');
    let name = guard.0.clone();
    create_persistent_tap(&name, None).unwrap();
    let (rx, tx) = open_tap(&name).unwrap();
    // SAFETY: the child calls only async-signal-safe functions (nanosleep, _exit)
    // before it exits; the parent reaps it with waitpid below.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: nanosleep reads one valid timespec; _exit never returns.
        unsafe {
            libc::nanosleep(&pause, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    drop((rx, tx));
    let deleted = delete_persistent_tap(&name);
    let mut status = 0;
    // SAFETY: waits for the child forked above, writing its status into `status`.
    let reaped = unsafe { libc::waitpid(child, &mut status, 0) };
    assert_eq!(reaped, child);
    deleted.unwrap();
    assert!(wait_gone(&name));
}
