//! In-memory port for tests: frames are injected and collected through a
//! [`MemoryHandle`] instead of a kernel interface.
//!
//! Invariants: injected frames are delivered in order, at most
//! [`MemoryLimits::rx_batch`] per `recv`; transmitted frames become visible to the handle
//! only after `flush`, as complete frame bytes (tag inserted in-band). A memory port
//! takes no virtio-net headers: GSO super-frames pushed to it are segmented and partial
//! checksums completed in software, as on any such port. [`MemoryRx::fd`]
//! is an eventfd that is readable whenever injected frames are waiting (it may also
//! wake up spuriously), so a poll(2)-driven runtime can use memory ports unchanged.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::frame::{ETH_HLEN, FrameDesc, TxOptions, complete_l4_checksum, frame_len, write_frame};
use crate::gso::{Segmenter, SoftwareOffload};
use crate::{IoError, RxBatch, RxQueue, RxStats, TxError, TxQueue, TxStats, VlanTag, VnetHdr};

/// Limits of a memory port, mirroring the finite rings of the real backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Most frames one `recv` returns. Default 64.
    pub rx_batch: usize,
    /// Most frames queued between flushes ([`TxError::RingFull`] beyond). Default 256.
    pub tx_capacity: usize,
    /// Largest frame `push` accepts ([`TxError::TooBig`] beyond; frames shorter than 14
    /// bytes are refused too). Default 1518.
    pub max_frame: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            rx_batch: 64,
            tx_capacity: 256,
            max_frame: 1518,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    rx: VecDeque<(Vec<u8>, Option<VlanTag>, Option<VnetHdr>)>,
    tx: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Readable while injected frames wait (eventfd); `None` if it could not be created.
    event: Option<OwnedFd>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self) {
        if let Some(fd) = &self.event {
            let one: u64 = 1;
            // SAFETY: writes the 8 bytes of `one` to an eventfd we own; a failure
            // (counter saturated) only means it is already readable.
            unsafe {
                libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8);
            }
        }
    }

    fn clear_signal(&self) {
        if let Some(fd) = &self.event {
            let mut v: u64 = 0;
            // SAFETY: reads at most 8 bytes into `v` from a non-blocking eventfd we own;
            // EAGAIN (not signalled) is fine.
            unsafe {
                libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
            }
        }
    }
}

fn eventfd() -> Option<OwnedFd> {
    // SAFETY: eventfd(2) takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "memory port without eventfd: its fd() is None"
        );
        return None;
    }
    // SAFETY: `fd` was just returned by eventfd(2): open and owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A memory port with default [`MemoryLimits`].
pub fn memory_port() -> (MemoryRx, MemoryTx, MemoryHandle) {
    memory_port_with(MemoryLimits::default())
}

/// A memory port with the given limits.
pub fn memory_port_with(limits: MemoryLimits) -> (MemoryRx, MemoryTx, MemoryHandle) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State::default()),
        event: eventfd(),
    });
    (
        MemoryRx {
            inner: Arc::clone(&inner),
            limits,
            buf: Vec::new(),
            descs: Vec::new(),
            stats: RxStats::default(),
        },
        MemoryTx {
            inner: Arc::clone(&inner),
            limits,
            pending: Vec::new(),
            segmenter: Segmenter::new(),
            stats: TxStats::default(),
        },
        MemoryHandle { inner },
    )
}

/// The test's side of a memory port: inject received frames, take sent ones.
#[derive(Clone, Debug)]
pub struct MemoryHandle {
    inner: Arc<Inner>,
}

impl MemoryHandle {
    /// Queues `frame` for the port's [`MemoryRx`], with `tag` as the VLAN tag the
    /// kernel would have stripped into metadata.
    pub fn inject(&self, frame: &[u8], tag: Option<VlanTag>) {
        self.inject_with_vnet(frame, tag, None);
    }

    /// [`MemoryHandle::inject`] with the virtio-net header a kernel would have
    /// delivered beside the frame (a GSO super-frame, a partial checksum).
    pub fn inject_with_vnet(&self, frame: &[u8], tag: Option<VlanTag>, vnet: Option<VnetHdr>) {
        self.inner.state().rx.push_back((frame.to_vec(), tag, vnet));
        self.inner.signal();
    }

    /// Number of injected frames not yet returned by `recv`.
    pub fn pending_rx(&self) -> usize {
        self.inner.state().rx.len()
    }

    /// Takes every frame flushed by the port's [`MemoryTx`] so far (full frame bytes,
    /// tag in-band), oldest first.
    pub fn take_transmitted(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.inner.state().tx)
    }
}

/// Receiving half of a memory port.
#[derive(Debug)]
pub struct MemoryRx {
    inner: Arc<Inner>,
    limits: MemoryLimits,
    buf: Vec<u8>,
    descs: Vec<FrameDesc>,
    stats: RxStats,
}

impl MemoryRx {
    /// Counters of this queue.
    pub fn stats(&self) -> RxStats {
        self.stats
    }
}

impl RxQueue for MemoryRx {
    fn fd(&self) -> Option<RawFd> {
        self.inner.event.as_ref().map(|fd| fd.as_raw_fd())
    }

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        self.buf.clear();
        self.descs.clear();
        // Clear before taking, so a frame injected meanwhile re-signals.
        self.inner.clear_signal();
        let more = {
            let mut st = self.inner.state();
            while self.descs.len() < self.limits.rx_batch {
                let Some((frame, tag, vnet)) = st.rx.pop_front() else {
                    break;
                };
                self.descs.push(FrameDesc {
                    offset: self.buf.len() as u32,
                    len: frame.len() as u32,
                    tag,
                    csum_partial: vnet.is_some_and(VnetHdr::needs_csum),
                    vnet,
                    peer: None,
                });
                if vnet.is_some_and(VnetHdr::is_gso) {
                    self.stats.gso_frames += 1;
                }
                self.buf.extend_from_slice(&frame);
            }
            !st.rx.is_empty()
        };
        if more {
            self.inner.signal();
        }
        if !self.descs.is_empty() {
            self.stats.batches += 1;
            self.stats.frames += self.descs.len() as u64;
        }
        Ok(RxBatch::new(&self.buf, &self.descs))
    }
}

/// Sending half of a memory port.
#[derive(Debug)]
pub struct MemoryTx {
    inner: Arc<Inner>,
    limits: MemoryLimits,
    pending: Vec<Vec<u8>>,
    segmenter: Segmenter,
    stats: TxStats,
}

impl MemoryTx {
    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        self.stats
    }
}

impl TxQueue for MemoryTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        self.push_offloaded(head, tag, body, opts)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.stats.sent += self.pending.len() as u64;
        self.inner.state().tx.append(&mut self.pending);
        Ok(())
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
    }
}

impl SoftwareOffload for MemoryTx {
    fn segmenter(&mut self) -> &mut Segmenter {
        &mut self.segmenter
    }
    fn tx_counters(&mut self) -> &mut TxStats {
        &mut self.stats
    }
    fn push_plain_frame(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        complete_checksum: bool,
    ) -> Result<(), TxError> {
        let len = frame_len(head, tag, body);
        if len < ETH_HLEN || len > self.limits.max_frame {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if self.pending.len() >= self.limits.tx_capacity {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        let mut frame = vec![0; len];
        if write_frame(&mut frame, head, tag, body).is_none() {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if complete_checksum {
            complete_l4_checksum(&mut frame);
        }
        self.pending.push(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: [u8; 12] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1];

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd; timeout 0 never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLIN != 0
    }

    #[test]
    fn injected_frames_come_out_in_order_with_tags() {
        let (mut rx, _tx, h) = memory_port();
        let fd = rx.fd().expect("eventfd");
        assert!(!readable(fd));
        assert!(rx.recv().unwrap().is_empty());
        h.inject(b"frame-one-0123456", None);
        h.inject(b"frame-two-0123456", Some(VlanTag::dot1q(10, 0)));
        assert!(readable(fd));
        assert_eq!(h.pending_rx(), 2);
        {
            let batch = rx.recv().unwrap();
            assert_eq!(batch.len(), 2);
            let frames: Vec<_> = batch.iter().map(|f| (f.data.to_vec(), f.tag)).collect();
            assert_eq!(frames[0], (b"frame-one-0123456".to_vec(), None));
            assert_eq!(
                frames[1],
                (b"frame-two-0123456".to_vec(), Some(VlanTag::dot1q(10, 0)))
            );
            // A batch can be walked twice.
            assert_eq!(batch.iter().count(), 2);
        }
        assert!(!readable(fd));
        assert!(rx.recv().unwrap().is_empty());
        assert_eq!(rx.stats().frames, 2);
        assert_eq!(rx.stats().batches, 1);
    }

    #[test]
    fn batches_are_bounded_and_stay_signalled() {
        let (mut rx, _tx, h) = memory_port_with(MemoryLimits {
            rx_batch: 3,
            ..MemoryLimits::default()
        });
        for i in 0..7u8 {
            h.inject(&[i; 20], None);
        }
        let sizes: Vec<usize> = (0..4).map(|_| rx.recv().unwrap().len()).collect();
        assert_eq!(sizes, vec![3, 3, 1, 0]);
        for i in 0..4u8 {
            h.inject(&[i; 20], None);
        }
        assert_eq!(rx.recv().unwrap().len(), 3);
        assert!(readable(rx.fd().unwrap()), "frames remain: still readable");
        let b = rx.recv().unwrap();
        assert_eq!(b.get(0).data, &[3u8; 20][..]);
    }

    #[test]
    fn transmitted_frames_appear_after_flush_with_tag_inserted() {
        let (_rx, mut tx, h) = memory_port();
        tx.push(&HEAD, None, &[0x08, 0x06, 1, 2]).unwrap();
        tx.push(&HEAD, Some(VlanTag::dot1q(20, 3)), &[0x08, 0x00, 9])
            .unwrap();
        assert!(h.take_transmitted().is_empty(), "nothing before flush");
        tx.flush().unwrap();
        let out = h.take_transmitted();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], [&HEAD[..], &[0x08, 0x06, 1, 2]].concat());
        assert_eq!(
            out[1],
            [&HEAD[..], &[0x81, 0x00, 0x60, 0x14], &[0x08, 0x00, 9]].concat()
        );
        assert!(h.take_transmitted().is_empty());
        assert_eq!(tx.stats().sent, 2);
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let (_rx, mut tx, h) = memory_port_with(MemoryLimits {
            tx_capacity: 2,
            max_frame: 64,
            ..MemoryLimits::default()
        });
        assert_eq!(tx.push(&HEAD, None, &[0; 53]), Err(TxError::TooBig));
        assert_eq!(tx.push(&HEAD, None, &[0; 1]), Err(TxError::TooBig));
        tx.push(&HEAD, None, &[0; 52]).unwrap();
        assert_eq!(
            tx.push(&HEAD, Some(VlanTag::dot1q(1, 0)), &[0; 49]),
            Err(TxError::TooBig)
        );
        tx.push(&HEAD, Some(VlanTag::dot1q(1, 0)), &[0; 48])
            .unwrap();
        assert_eq!(tx.push(&HEAD, None, &[0; 2]), Err(TxError::RingFull));
        tx.flush().unwrap();
        tx.push(&HEAD, None, &[0; 2]).unwrap();
        tx.flush().unwrap();
        assert_eq!(h.take_transmitted().len(), 3);
        let s = tx.stats();
        assert_eq!((s.sent, s.ring_full, s.too_big), (3, 1, 3));
    }

    #[test]
    fn super_frames_are_segmented_and_vnet_headers_delivered() {
        // A TCP/IPv4 super-frame: 3000 payload bytes behind 54 bytes of headers.
        let mut f = HEAD.to_vec();
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0x0b, 0xe0, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x00, 0x50]);
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.resize(54 + 3000, 0x5a);
        let gso = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            gso_size: 1400,
            ..VnetHdr::default()
        };
        let (mut rx, mut tx, h) = memory_port();
        h.inject_with_vnet(&f, None, Some(gso));
        {
            let b = rx.recv().unwrap();
            assert!(b.get(0).is_gso() && b.get(0).csum_partial);
            assert_eq!(b.get(0).vnet, Some(gso));
        }
        assert_eq!(rx.stats().gso_frames, 1);
        let opts = TxOptions {
            offload: Some(gso),
            ..TxOptions::default()
        };
        tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
        tx.flush().unwrap();
        let out = h.take_transmitted();
        let sizes: Vec<usize> = out.iter().map(|s| s.len() - 54).collect();
        assert_eq!(sizes, vec![1400, 1400, 200]);
        assert_eq!(tx.stats().gso_segments, 3);
        assert_eq!(tx.tx_stats().sent, 3);
        // A request that does not match the frame is refused, not sent.
        let bad = TxOptions {
            offload: Some(VnetHdr {
                gso_type: VnetHdr::GSO_TCPV6,
                ..gso
            }),
            ..TxOptions::default()
        };
        assert!(matches!(
            tx.push_with(&f[..12], None, &f[12..], bad),
            Err(TxError::BadOffload(_))
        ));
        assert_eq!(tx.stats().bad_offload, 1);
    }

    #[test]
    fn handle_is_send_and_clone_across_threads() {
        let (mut rx, _tx, h) = memory_port();
        let h2 = h.clone();
        std::thread::spawn(move || h2.inject(&[7; 30], None))
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap().len(), 1);
    }
}
