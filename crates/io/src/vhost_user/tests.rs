//! The backend against a frontend written here (the messages QEMU sends, in QEMU's
//! order), over a real Unix socket with a memfd as guest memory; and property tests
//! of the descriptor-chain walker and of the guest-TX path on arbitrary rings.

use super::*;
use proptest::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicUsize;

const MEM: u64 = 1 << 20;
const UVA: u64 = 0x7f00_0000_0000;
const Q: u16 = 16;
/// Per queue: descriptor table, avail ring, used ring.
const RINGS: [(u64, u64, u64); 2] = [(0x0, 0x1000, 0x2000), (0x3000, 0x4000, 0x5000)];
const BUF: u64 = 0x10000;

fn socket_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "portcullis-vu-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn memfd() -> File {
    // SAFETY: the name is a valid C string; memfd_create takes no other pointer.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just returned by memfd_create, owned by nobody else.
    let f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.set_len(MEM).expect("memfd size");
    f
}

/// The QEMU side, minus QEMU.
struct Frontend {
    s: UnixStream,
    mem: File,
    kicks: [OwnedFd; 2],
    calls: [OwnedFd; 2],
}

impl Frontend {
    fn connect(path: &std::path::Path) -> Frontend {
        Frontend {
            s: UnixStream::connect(path).expect("connect"),
            mem: memfd(),
            kicks: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
            calls: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
        }
    }

    fn send(&self, req: u32, flags: u32, payload: &[u8], fds: &[RawFd]) {
        let mut msg = Vec::new();
        msg.extend_from_slice(&req.to_le_bytes());
        msg.extend_from_slice(&(FLAG_VERSION | flags).to_le_bytes());
        msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        msg.extend_from_slice(payload);
        let mut cmsg = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: msg.as_mut_ptr().cast(),
            iov_len: msg.len(),
        };
        // SAFETY: a zeroed msghdr is valid.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if !fds.is_empty() {
            let bytes = std::mem::size_of_val(fds);
            m.msg_control = cmsg.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            m.msg_controllen = unsafe { libc::CMSG_SPACE(bytes as u32) } as usize;
            // SAFETY: the control buffer (128 bytes) holds one header and 8 fds; the
            // CMSG_* macros stay inside `msg_controllen`.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&m);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
                std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), bytes);
            }
        }
        // SAFETY: `m` points to valid buffers for the sizes given.
        let n = unsafe { libc::sendmsg(self.s.as_raw_fd(), &m, 0) };
        assert_eq!(n as usize, msg.len());
    }

    fn reply(&mut self) -> Vec<u8> {
        let mut hdr = [0u8; HDR_LEN];
        self.s.read_exact(&mut hdr).expect("reply header");
        let flags = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        assert_eq!(flags, FLAG_VERSION | FLAG_REPLY);
        let size = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        let mut p = vec![0; size];
        self.s.read_exact(&mut p).expect("reply payload");
        p
    }

    /// Sends a request, lets the backend run, and reads the reply if one is due.
    fn call(&mut self, rx: &mut VhostUserRx, req: u32, payload: &[u8], fds: &[RawFd]) -> Vec<u8> {
        let ack = !matches!(req, GET_FEATURES | GET_PROTOCOL_FEATURES | GET_VRING_BASE);
        self.send(req, if ack { FLAG_NEED_REPLY } else { 0 }, payload, fds);
        rx.recv().expect("recv");
        let r = self.reply();
        if ack {
            assert_eq!(r, 0u64.to_le_bytes(), "request {req} acknowledged");
        }
        r
    }

    /// QEMU's start-up sequence, with its quirk: rings enabled/disabled before
    /// SET_FEATURES.
    fn start(&mut self, rx: &mut VhostUserRx, features: u64) {
        let offered = u64::from_le_bytes(self.call(rx, GET_FEATURES, &[], &[]).try_into().unwrap());
        assert_eq!(offered, OFFERED_FEATURES);
        self.send(GET_PROTOCOL_FEATURES, 0, &[], &[]);
        rx.recv().unwrap();
        self.reply();
        self.send(
            SET_PROTOCOL_FEATURES,
            0,
            &PROTOCOL_F_REPLY_ACK.to_le_bytes(),
            &[],
        );
        self.call(rx, SET_OWNER, &[], &[]);
        for q in 0..2u32 {
            self.call(rx, SET_VRING_ENABLE, &pair(q, 0), &[]);
        }
        self.call(rx, SET_FEATURES, &features.to_le_bytes(), &[]);
        let mut table = Vec::new();
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        for v in [0, MEM, UVA, 0] {
            table.extend_from_slice(&v.to_le_bytes());
        }
        let memfd = self.mem.as_raw_fd();
        self.call(rx, SET_MEM_TABLE, &table, &[memfd]);
        for (q, &(d, a, u)) in RINGS.iter().enumerate() {
            self.call(rx, SET_VRING_NUM, &pair(q as u32, u32::from(Q)), &[]);
            self.call(rx, SET_VRING_BASE, &pair(q as u32, 0), &[]);
            let mut addr = Vec::new();
            addr.extend_from_slice(&(q as u32).to_le_bytes());
            addr.extend_from_slice(&0u32.to_le_bytes());
            for v in [UVA + d, UVA + u, UVA + a, 0] {
                addr.extend_from_slice(&v.to_le_bytes());
            }
            self.call(rx, SET_VRING_ADDR, &addr, &[]);
            let kick = self.kicks[q].as_raw_fd();
            let call = self.calls[q].as_raw_fd();
            self.call(rx, SET_VRING_KICK, &(q as u64).to_le_bytes(), &[kick]);
            self.call(rx, SET_VRING_CALL, &(q as u64).to_le_bytes(), &[call]);
        }
        for q in 0..2u32 {
            self.call(rx, SET_VRING_ENABLE, &pair(q, 1), &[]);
        }
        assert!(rx.is_running());
    }

    fn w(&self, gpa: u64, b: &[u8]) {
        self.mem.write_all_at(b, gpa).unwrap();
    }
    fn r(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read_exact_at(&mut b, gpa).unwrap();
        b
    }
    fn u16_at(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.r(gpa, 2).try_into().unwrap())
    }
    fn desc(&self, q: usize, i: u16, d: Desc) {
        let mut b = Vec::new();
        b.extend_from_slice(&d.addr.to_le_bytes());
        b.extend_from_slice(&d.len.to_le_bytes());
        b.extend_from_slice(&d.flags.to_le_bytes());
        b.extend_from_slice(&d.next.to_le_bytes());
        self.w(RINGS[q].0 + 16 * u64::from(i), &b);
    }
    /// Makes `heads` available on queue `q` from avail index `from`.
    fn offer(&self, q: usize, from: u16, heads: &[u16]) {
        let a = RINGS[q].1;
        for (k, h) in heads.iter().enumerate() {
            let slot = (from as usize + k) % usize::from(Q);
            self.w(a + 4 + 2 * slot as u64, &h.to_le_bytes());
        }
        self.w(
            a + 2,
            &(from.wrapping_add(heads.len() as u16)).to_le_bytes(),
        );
        eventfd_write(&self.kicks[q]);
    }
    /// The used element `i` of queue `q`: (id, len).
    fn used(&self, q: usize, i: u16) -> (u32, u32) {
        let b = self.r(RINGS[q].2 + 4 + 8 * u64::from(i % Q), 8);
        (
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            u32::from_le_bytes(b[4..].try_into().unwrap()),
        )
    }
    fn called(&self, q: usize) -> bool {
        let mut v = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `v` from a non-blocking eventfd.
        unsafe { libc::read(self.calls[q].as_raw_fd(), v.as_mut_ptr().cast(), 8) == 8 }
    }
}

/// Waits (up to 5 s) for what the control thread does in its own time.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pair(a: u32, b: u32) -> [u8; 8] {
    let mut o = [0u8; 8];
    o[..4].copy_from_slice(&a.to_le_bytes());
    o[4..].copy_from_slice(&b.to_le_bytes());
    o
}

const ALL: u64 = OFFERED_FEATURES;

fn frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| i as u8).collect();
    f[..6].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// A port named `name` in server mode on a fresh socket path, nobody connected.
fn server_port(name: &str) -> (PathBuf, VhostUserRx, VhostUserTx) {
    let path = socket_path();
    let opts = VhostUserOptions {
        socket: path.clone(),
        mode: VhostUserMode::Server,
    };
    let (rx, tx) = open_vhost_user(name, &opts).expect("open");
    (path, rx, tx)
}

fn setup(features: u64) -> (PathBuf, VhostUserRx, VhostUserTx, Frontend) {
    let (path, mut rx, tx) = server_port("vm");
    assert!(rx.recv().unwrap().is_empty(), "nobody connected");
    let mut fe = Frontend::connect(&path);
    fe.start(&mut rx, features);
    (path, rx, tx, fe)
}

#[test]
fn guest_frames_reach_the_switch_with_their_header_and_are_returned() {
    let (_p, mut rx, _tx, fe) = setup(ALL);
    let f = frame(100);
    let mut hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Default::default()
    }
    .to_bytes()
    .to_vec();
    hdr.extend_from_slice(&[1, 0]);
    // Header and frame split over two descriptors.
    fe.w(BUF, &hdr);
    fe.w(BUF + 0x100, &f);
    fe.desc(
        1,
        0,
        Desc {
            addr: BUF,
            len: 12,
            flags: DESC_F_NEXT,
            next: 1,
        },
    );
    fe.desc(
        1,
        1,
        Desc {
            addr: BUF + 0x100,
            len: 100,
            flags: 0,
            next: 0,
        },
    );
    fe.offer(1, 0, &[0]);
    let batch = rx.recv().unwrap();
    assert_eq!(batch.len(), 1);
    let got = batch.get(0);
    assert_eq!(got.data, &f[..]);
    assert!(got.csum_partial);
    assert_eq!(got.vnet.unwrap().csum_start, 34);
    assert_eq!(fe.u16_at(RINGS[1].2 + 2), 1, "used index published");
    assert_eq!(fe.used(1, 0), (0, 0));
    rx.end_turn();
    assert!(fe.called(1));
}

#[test]
fn switch_frames_fill_guest_buffers_merging_them_for_large_frames() {
    let (_p, _rx, mut tx, fe) = setup(ALL);
    for i in 0..4u16 {
        fe.desc(
            0,
            i,
            Desc {
                addr: BUF + 0x1000 * u64::from(i),
                len: 2048,
                flags: DESC_F_WRITE,
                next: 0,
            },
        );
    }
    fe.offer(0, 0, &[0, 1, 2, 3]);
    let f = frame(1000);
    tx.push(&f[..12], None, &f[12..]).expect("pushed");
    tx.flush().unwrap();
    assert!(fe.called(0));
    assert_eq!(fe.u16_at(RINGS[0].2 + 2), 1);
    assert_eq!(fe.used(0, 0), (0, 1012));
    assert_eq!(fe.r(BUF + 12, 1000), f);
    assert_eq!(fe.u16_at(BUF + 10), 1, "num_buffers");
    // 5000 bytes: three 2048-byte buffers.
    let big = frame(5000);
    tx.push(&big[..12], None, &big[12..]).expect("pushed");
    assert_eq!(fe.u16_at(RINGS[0].2 + 2), 4);
    assert_eq!(fe.u16_at(BUF + 0x1000 + 10), 3, "num_buffers");
    assert_eq!(fe.used(0, 1), (1, 2048));
    assert_eq!(fe.used(0, 3), (3, 5012 - 4096));
    let mut out = fe.r(BUF + 0x1000 + 12, 2036);
    out.extend(fe.r(BUF + 0x2000, 2048));
    out.extend(fe.r(BUF + 0x3000, 5012 - 4096));
    assert_eq!(out, big);
    // No buffers left: a counted drop, nothing waits.
    assert_eq!(tx.push(&f[..12], None, &f[12..]), Err(TxError::RingFull));
    assert_eq!(tx.stats().ring_full, 1);
    assert_eq!(tx.stats().sent, 2);
}

#[test]
fn a_super_frame_goes_whole_to_a_guest_with_tso_and_in_segments_to_one_without() {
    for (features, whole) in [(ALL, true), (ALL & !VIRTIO_NET_F_GUEST_TSO4, false)] {
        let (_p, _rx, mut tx, fe) = setup(features);
        for i in 0..Q {
            fe.desc(
                0,
                i,
                Desc {
                    addr: BUF + 0x1000 * u64::from(i),
                    len: 4096,
                    flags: DESC_F_WRITE,
                    next: 0,
                },
            );
        }
        fe.offer(0, 0, &(0..Q).collect::<Vec<_>>());
        let sf = crate::gso::tests::tcp_super_frame(false, 6000, 0x18);
        let req = VnetHdr {
            gso_type: VnetHdr::GSO_TCPV4,
            gso_size: 1000,
            ..Default::default()
        };
        let opts = TxOptions {
            offload: Some(req),
            ..Default::default()
        };
        tx.push_with(&sf[..12], None, &sf[12..], opts)
            .expect("pushed");
        let hdr = VnetHdr::from_bytes(&fe.r(BUF, 10)).unwrap();
        if whole {
            assert_eq!(hdr.gso_type, VnetHdr::GSO_TCPV4);
            assert_eq!(hdr.gso_size, 1000);
            assert_eq!(tx.stats().gso_whole, 1);
            assert_eq!(fe.u16_at(RINGS[0].2 + 2), 2, "two 4 KiB buffers");
        } else {
            assert!(!hdr.is_gso());
            assert_eq!(tx.stats().gso_segments, 6);
            assert_eq!(fe.u16_at(RINGS[0].2 + 2), 6);
        }
    }
}

#[test]
fn need_event_is_virtios_index_crossing_with_wraparound() {
    // Moving the used index from 3 to 6 crosses an event at 3, 4 or 5 only.
    assert!(!need_event(2, 6, 3));
    assert!(need_event(3, 6, 3));
    assert!(need_event(5, 6, 3));
    assert!(!need_event(6, 6, 3));
    // Across the 16-bit wrap: 65534 → 2 crosses 65535 and 1.
    assert!(need_event(65535, 2, 65534));
    assert!(need_event(1, 2, 65534));
    assert!(!need_event(2, 2, 65534));
    assert!(!need_event(65533, 2, 65534));
}

/// Offers `n` one-descriptor frames (each [`frame`]`(60)` behind a zero header) on
/// the guest's TX queue from avail index `from`.
fn offer_frames(fe: &Frontend, from: u16, n: u16) {
    let f = frame(60);
    let heads: Vec<u16> = (0..n).map(|k| (from + k) % Q).collect();
    for &h in &heads {
        let at = BUF + 0x100 * u64::from(h);
        fe.w(at, &[0; 12]);
        fe.w(at + 12, &f);
        fe.desc(
            1,
            h,
            Desc {
                addr: at,
                len: 72,
                flags: 0,
                next: 0,
            },
        );
    }
    fe.offer(1, from, &heads);
}

#[test]
fn with_event_idx_the_guest_is_signalled_only_when_it_asks_and_told_where_to_kick() {
    let (_p, mut rx, _tx, fe) = setup(ALL);
    let (avail, used) = (RINGS[1].1, RINGS[1].2);
    let avail_event = used + 4 + 8 * u64::from(Q);
    let used_event = avail + 4 + 2 * u64::from(Q);
    // The first frames returned always signal.
    offer_frames(&fe, 0, 1);
    assert_eq!(rx.recv().unwrap().len(), 1);
    rx.end_turn();
    assert!(fe.called(1), "first used buffers signalled");
    assert_eq!(fe.u16_at(avail_event), 1, "kick for the chain at index 1");
    // The guest asks to hear when the used index passes 5 (Linux's delayed TX
    // interrupt): two frames returned (used index 3) do not signal it.
    fe.w(used_event, &5u16.to_le_bytes());
    offer_frames(&fe, 1, 2);
    assert_eq!(rx.recv().unwrap().len(), 2);
    rx.end_turn();
    assert!(!fe.called(1), "used index 3 has not passed 5");
    assert_eq!(fe.u16_at(avail_event), 3);
    // Three more (used index 6): signalled once.
    offer_frames(&fe, 3, 3);
    assert_eq!(rx.recv().unwrap().len(), 3);
    rx.end_turn();
    assert!(fe.called(1), "used index 6 passed 5");
    assert_eq!(fe.u16_at(avail_event), 6);
    assert!(rx.recv().unwrap().is_empty());
    rx.end_turn();
    assert!(!fe.called(1), "nothing new, no signal");
    assert!(!readable(&rx), "nothing to wake the worker for");
    // A chain offered after the worker's last look, its kick already consumed (the
    // guest may skip it, having read the old avail_event): the turn's end keeps
    // the port's fd readable so that the worker comes back for it.
    offer_frames(&fe, 6, 1);
    rx.consume_wakeups();
    assert!(!readable(&rx));
    rx.end_turn();
    assert!(readable(&rx), "woken for the chain left");
    assert_eq!(rx.recv().unwrap().len(), 1);
}

/// Whether the port's poll fd is readable now.
fn readable(rx: &VhostUserRx) -> bool {
    let mut p = libc::pollfd {
        fd: rx.fd().unwrap(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polls one valid pollfd without waiting.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

#[test]
fn without_event_idx_the_guests_no_interrupt_flag_is_honoured() {
    let (_p, mut rx, _tx, fe) = setup(ALL & !VIRTIO_RING_F_EVENT_IDX);
    offer_frames(&fe, 0, 1);
    assert_eq!(rx.recv().unwrap().len(), 1);
    rx.end_turn();
    assert!(fe.called(1));
    // VRING_AVAIL_F_NO_INTERRUPT: the guest polls and wants no interrupt.
    fe.w(RINGS[1].1, &1u16.to_le_bytes());
    offer_frames(&fe, 1, 2);
    assert_eq!(rx.recv().unwrap().len(), 2);
    rx.end_turn();
    assert!(!fe.called(1));
    assert_eq!(
        fe.u16_at(RINGS[1].2 + 4 + 8 * u64::from(Q)),
        0,
        "no avail_event written without EVENT_IDX"
    );
}

#[test]
fn bad_chains_are_dropped_and_counted_and_a_runaway_ring_is_broken() {
    let (_p, mut rx, _tx, fe) = setup(ALL);
    // A loop, an address outside guest memory, a device-writable buffer, a next
    // index outside the table.
    fe.desc(
        1,
        0,
        Desc {
            addr: BUF,
            len: 64,
            flags: DESC_F_NEXT,
            next: 0,
        },
    );
    fe.desc(
        1,
        1,
        Desc {
            addr: MEM - 10,
            len: 64,
            flags: 0,
            next: 0,
        },
    );
    fe.desc(
        1,
        2,
        Desc {
            addr: BUF,
            len: 64,
            flags: DESC_F_WRITE,
            next: 0,
        },
    );
    fe.desc(
        1,
        3,
        Desc {
            addr: BUF,
            len: 64,
            flags: DESC_F_NEXT,
            next: 999,
        },
    );
    fe.desc(
        1,
        4,
        Desc {
            addr: u64::MAX - 8,
            len: 64,
            flags: 0,
            next: 0,
        },
    );
    fe.offer(1, 0, &[0, 1, 2, 3, 4]);
    assert!(rx.recv().unwrap().is_empty());
    assert_eq!(rx.vhost_stats().bad_chains, 5);
    assert_eq!(fe.u16_at(RINGS[1].2 + 2), 5, "every chain returned");
    // The avail index runs far ahead: the ring is broken, no panic, nothing read.
    fe.offer(1, 5, &[0; 3]);
    fe.w(RINGS[1].1 + 2, &1000u16.to_le_bytes());
    assert!(rx.recv().unwrap().is_empty());
    assert_eq!(rx.vhost_stats().broken_rings, 1);
    assert!(rx.recv().unwrap().is_empty());
}

#[test]
fn a_new_frontend_after_a_disconnect_is_served_from_scratch() {
    let (path, mut rx, mut tx, fe) = setup(ALL);
    drop(fe);
    assert!(rx.recv().unwrap().is_empty());
    eventually("the frontend is gone", || rx.vhost_stats().disconnects == 1);
    let f = frame(60);
    assert_eq!(tx.push(&f[..12], None, &f[12..]), Err(TxError::RingFull));
    let mut fe = Frontend::connect(&path);
    fe.start(&mut rx, ALL);
    assert_eq!(rx.vhost_stats().connections, 2);
    offer_frames(&fe, 0, 1);
    assert_eq!(rx.recv().unwrap().get(0).data, &f[..]);
}

#[test]
fn the_link_is_up_only_while_a_frontend_runs_both_rings() {
    let (path, mut rx, _tx) = server_port("vm");
    rx.recv().unwrap();
    assert_eq!(rx.link_up(), Some(false), "nobody connected");
    let mut fe = Frontend::connect(&path);
    rx.recv().unwrap();
    assert_eq!(rx.link_up(), Some(false), "connected, no rings yet");
    fe.start(&mut rx, ALL);
    assert_eq!(rx.link_up(), Some(true), "both rings run");
    // The guest's driver stops one ring (a reset, an `ip link set down`).
    fe.call(&mut rx, SET_VRING_ENABLE, &pair(0, 0), &[]);
    assert_eq!(rx.link_up(), Some(false), "one ring stopped");
    fe.call(&mut rx, SET_VRING_ENABLE, &pair(0, 1), &[]);
    assert_eq!(rx.link_up(), Some(true));
    // QEMU goes away.
    drop(fe);
    eventually("the frontend is gone", || rx.link_up() == Some(false));
    let mut fe = Frontend::connect(&path);
    fe.start(&mut rx, ALL);
    assert_eq!(
        rx.link_up(),
        Some(true),
        "a new frontend brings it up again"
    );
}

#[test]
fn a_frontend_that_stalls_or_sends_garbage_is_dropped_without_holding_the_port() {
    let (path, mut rx, _tx) = server_port("vm");
    // Half a header, then nothing: the control thread waits for the rest, the data
    // path does not (it never reads the connection), and the frontend is dropped
    // within the message deadline.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(&[1, 0, 0, 0, 1, 0]).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..100 {
        assert!(rx.recv().unwrap().is_empty());
    }
    assert!(
        t.elapsed() < MESSAGE_DEADLINE / 2,
        "the data path is never held by the frontend: {:?}",
        t.elapsed()
    );
    eventually("the trickling frontend dropped", || {
        rx.vhost_stats().disconnects == 1
    });
    // A header of another protocol version, then one announcing a huge payload.
    for (k, hdr) in [
        [1u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&hdr).unwrap();
        eventually("the malformed frontend dropped", || {
            rx.vhost_stats().disconnects == 2 + k as u64
        });
    }
    let st = rx.vhost_stats();
    assert_eq!((st.disconnects, st.bad_messages), (3, 2));
    // An unknown request is refused (acknowledged as failed), the connection kept.
    let mut fe = Frontend::connect(&path);
    fe.send(GET_PROTOCOL_FEATURES, 0, &[], &[]);
    rx.recv().unwrap();
    fe.reply();
    fe.send(
        SET_PROTOCOL_FEATURES,
        0,
        &PROTOCOL_F_REPLY_ACK.to_le_bytes(),
        &[],
    );
    fe.send(99, FLAG_NEED_REPLY, &[0; 8], &[]);
    rx.recv().unwrap();
    assert_eq!(fe.reply(), 1u64.to_le_bytes());
    assert_eq!(rx.vhost_stats().disconnects, 3);
}

#[test]
fn closing_the_port_ends_its_control_thread_the_connection_and_the_socket_file() {
    let (path, mut rx, tx) = server_port("closing");
    let mut fe = Frontend::connect(&path);
    fe.start(&mut rx, ALL);
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.trim() == "vhu:closing")
            .count()
    };
    assert_eq!(
        threads(),
        1,
        "the port has its control thread, named after it"
    );
    // Both halves gone: the thread is stopped and joined before the drop returns.
    drop(rx);
    assert!(path.exists(), "the TX half still holds the port");
    drop(tx);
    assert_eq!(threads(), 0, "the control thread ended");
    assert!(!path.exists(), "the socket file removed");
    let mut b = [0u8; 1];
    fe.s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        fe.s.read(&mut b).unwrap(),
        0,
        "the frontend sees the connection end"
    );
}

#[test]
fn client_mode_connects_to_a_listening_frontend() {
    let path = socket_path();
    let l = UnixListener::bind(&path).unwrap();
    let opts = VhostUserOptions {
        socket: path.clone(),
        mode: VhostUserMode::Client,
    };
    let (mut rx, _tx) = open_vhost_user("vm", &opts).expect("open");
    let (s, _) = l.accept().unwrap();
    let mut fe = Frontend {
        s,
        mem: memfd(),
        kicks: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
        calls: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
    };
    fe.start(&mut rx, ALL);
    // The frontend goes away and comes back: the port connects again by itself.
    drop(fe);
    assert!(rx.recv().unwrap().is_empty());
    eventually("the lost frontend noticed", || {
        rx.vhost_stats().disconnects == 1
    });
    l.set_nonblocking(true).unwrap();
    let t = std::time::Instant::now();
    let s = loop {
        let _ = rx.recv();
        if let Ok((s, _)) = l.accept() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "reconnected");
        std::thread::sleep(Duration::from_millis(20));
    };
    s.set_nonblocking(false).unwrap();
    let mut fe = Frontend {
        s,
        mem: memfd(),
        kicks: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
        calls: [new_eventfd("t").unwrap(), new_eventfd("t").unwrap()],
    };
    fe.start(&mut rx, ALL);
    assert_eq!(rx.vhost_stats().connections, 2);
    let _ = std::fs::remove_file(&path);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any table, any head: the walk ends, visits at most `size` descriptors, and
    /// returns a chain that follows the table's links.
    #[test]
    fn the_chain_walker_ends_on_any_table(
        table in prop::collection::vec(
            (any::<u64>(), any::<u32>(), 0u16..8, any::<u16>()), 1..64),
        head in any::<u16>(),
        small_next in any::<bool>(),
    ) {
        let size = table.len() as u16;
        let descs: Vec<Desc> = table.iter().map(|&(addr, len, flags, next)| Desc {
            addr, len: len % 4096, flags,
            next: if small_next { next % (size + 1) } else { next },
        }).collect();
        let mut out = Vec::new();
        let mut reads = 0usize;
        let r = walk_chain(size, head, false, |i| { reads += 1; descs.get(usize::from(i)).copied() }, &mut out);
        prop_assert!(reads <= usize::from(size));
        prop_assert!(out.len() <= usize::from(size));
        if let Ok(total) = r {
            prop_assert_eq!(total, out.iter().map(|s| u64::from(s.1)).sum::<u64>());
            prop_assert!(total <= MAX_CHAIN_BYTES);
        }
        if head >= size {
            prop_assert_eq!(r, Err(ChainError::Head));
        }
    }

    /// Chains read through guest memory: any buffer address and length is either
    /// copied from inside a region or refused.
    #[test]
    fn gathering_never_reads_outside_guest_memory(
        segs in prop::collection::vec((any::<u64>(), 0u32..5000), 0..8),
        near in any::<bool>(),
    ) {
        let mem = GuestMemory::heap(&[(0x1000, 0x4000), (0x10000, 0x2000)]);
        let segs: Vec<(u64, u32)> = segs.into_iter()
            .map(|(a, l)| (if near { a % 0x14000 } else { a }, l))
            .collect();
        let mut dst = vec![0u8; 16384];
        let inside = |a: u64, l: u32| {
            let end = a.checked_add(u64::from(l));
            end.is_some_and(|e| (a >= 0x1000 && e <= 0x5000) || (a >= 0x10000 && e <= 0x12000))
        };
        let total: u64 = segs.iter().map(|s| u64::from(s.1)).sum();
        let got = gather(&mem, &segs, &mut dst);
        if segs.iter().all(|&(a, l)| inside(a, l)) && total <= 16384 {
            prop_assert_eq!(got, Some(total as usize));
        } else {
            prop_assert_eq!(got, None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A guest writing anything into its TX descriptor table and avail ring: the
    /// backend never panics, never returns more than a batch, and every frame it
    /// returns is a chain it could read whole.
    #[test]
    fn any_guest_tx_ring_is_survived(
        table in prop::collection::vec(any::<[u8; 16]>(), 16),
        heads in prop::collection::vec(any::<u16>(), 16),
        avail_idx in any::<u16>(),
    ) {
        let (_p, mut rx, _tx, fe) = setup(ALL);
        for (i, d) in table.iter().enumerate() {
            let mut d = *d;
            // Half the addresses inside guest memory, to get past the bounds checks.
            if i % 2 == 0 {
                let a = u64::from_le_bytes(d[..8].try_into().unwrap()) % MEM;
                d[..8].copy_from_slice(&a.to_le_bytes());
                let l = u32::from_le_bytes(d[8..12].try_into().unwrap()) % 4096;
                d[8..12].copy_from_slice(&l.to_le_bytes());
            }
            fe.w(RINGS[1].0 + 16 * i as u64, &d);
        }
        for (i, h) in heads.iter().enumerate() {
            fe.w(RINGS[1].1 + 4 + 2 * i as u64, &(h % 20).to_le_bytes());
        }
        fe.w(RINGS[1].1 + 2, &avail_idx.to_le_bytes());
        eventfd_write(&fe.kicks[1]);
        for _ in 0..3 {
            let batch = rx.recv().unwrap();
            prop_assert!(batch.len() <= RX_BATCH);
            for f in batch.iter() {
                prop_assert!(f.data.len() <= MAX_GSO_FRAME);
            }
        }
    }
}
