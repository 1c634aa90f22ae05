//! pcap capture files (the classic libpcap format, as tcpdump writes them): the
//! frames `portcullis replay` and `portcullis trace --pcap` feed to the switch, and
//! the file `replay --dropped` writes.
//!
//! Format: a 24-byte file header (magic, version 2.4, this zone, sigfigs, snaplen,
//! link type), then per packet a 16-byte record header (seconds, microseconds or
//! nanoseconds, captured length, original length) and the captured bytes. Both
//! byte orders and both timestamp resolutions (magic `a1b2c3d4` µs, `a1b23c4d` ns)
//! are read; files are written little-endian with nanosecond timestamps. pcapng
//! (`0a0d0d0a`) is recognised and refused with a hint.
//!
//! Invariants: the reader never panics and never allocates more than one record's
//! captured length, bounded by [`MAX_RECORD_LEN`], whatever the bytes; every
//! malformation is a [`PcapError`] naming the packet (0-based) and what is wrong; a
//! file the writer wrote reads back packet for packet.

use std::io::{self, Read, Write};

/// LINKTYPE_ETHERNET: frames start at the destination MAC.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The largest captured length a record may claim (libpcap's limit, 256 KiB).
pub const MAX_RECORD_LEN: u32 = 262_144;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const MAGIC_PCAPNG: u32 = 0x0a0d_0d0a;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// A pcap file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    /// Reading the file failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The file is shorter than the 24-byte pcap header.
    #[error("not a pcap file: {0} bytes, shorter than the 24-byte pcap header")]
    TooShort(usize),
    /// A pcapng file.
    #[error(
        "a pcapng file, not pcap: convert it first (editcap -F pcap IN.pcapng OUT.pcap, or tcpdump -r IN.pcapng -w OUT.pcap)"
    )]
    Pcapng,
    /// The magic number is not a pcap one.
    #[error("not a pcap file (magic number {0:#010x})")]
    BadMagic(u32),
    /// A version other than 2.x.
    #[error("unsupported pcap version {major}.{minor} (2.4 expected)")]
    BadVersion { major: u16, minor: u16 },
    /// The file ends inside a record.
    #[error("packet {index}: the file ends inside its {what} ({needed} bytes needed, {left} left)")]
    Truncated {
        index: u64,
        what: &'static str,
        needed: usize,
        left: usize,
    },
    /// A record claims more bytes than any capture holds.
    #[error(
        "packet {index}: captured length {caplen} is larger than {MAX_RECORD_LEN} bytes (a corrupt file?)"
    )]
    RecordTooLong { index: u64, caplen: u32 },
}

/// What the file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapHeader {
    /// The LINKTYPE_ value of every packet (1: Ethernet).
    pub link_type: u32,
    pub snaplen: u32,
    /// Timestamps in nanoseconds (else microseconds).
    pub nanos: bool,
    pub big_endian: bool,
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapPacket {
    /// The capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The packet's length on the wire (may exceed `data.len()` when the capture
    /// was cut at the snaplen).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// The common name of a link type, for error messages.
pub fn link_type_name(link_type: u32) -> &'static str {
    match link_type {
        0 => "BSD loopback",
        1 => "Ethernet",
        101 => "raw IP",
        105 => "IEEE 802.11",
        113 => "Linux cooked capture (SLL)",
        127 => "802.11 radiotap",
        228 => "raw IPv4",
        229 => "raw IPv6",
        276 => "Linux cooked capture v2 (SLL2)",
        _ => "unknown",
    }
}

/// Reads the packets of a pcap file, in file order.
#[derive(Debug)]
pub struct PcapReader<R> {
    r: R,
    header: PcapHeader,
    index: u64,
    done: bool,
}

/// Reads until `buf` is full or the input ends; returns how many bytes it got.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the file header.
    pub fn new(mut r: R) -> Result<PcapReader<R>, PcapError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut r, &mut h)?;
        let word = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        if got >= 4 && u32::from_le_bytes(word(&h)) == MAGIC_PCAPNG {
            return Err(PcapError::Pcapng);
        }
        if got < FILE_HEADER_LEN {
            return Err(PcapError::TooShort(got));
        }
        let (big_endian, nanos) = match (u32::from_le_bytes(word(&h)), u32::from_be_bytes(word(&h)))
        {
            (MAGIC_MICROS, _) => (false, false),
            (MAGIC_NANOS, _) => (false, true),
            (_, MAGIC_MICROS) => (true, false),
            (_, MAGIC_NANOS) => (true, true),
            (m, _) => return Err(PcapError::BadMagic(m)),
        };
        let u16_at = |i: usize| {
            let b = [h[i], h[i + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |i: usize| {
            let b = word(&h[i..]);
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(PcapError::BadVersion { major, minor });
        }
        // The link type is the low 16 bits (the upper ones carry FCS information).
        let header = PcapHeader {
            link_type: u32_at(20) & 0xffff,
            snaplen: u32_at(16),
            nanos,
            big_endian,
        };
        Ok(PcapReader {
            r,
            header,
            index: 0,
            done: false,
        })
    }

    pub fn header(&self) -> PcapHeader {
        self.header
    }

    /// The next packet; `None` at the end of the file. After an error, `None`.
    pub fn next_packet(&mut self) -> Option<Result<PcapPacket, PcapError>> {
        if self.done {
            return None;
        }
        let r = self.read_packet().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    fn read_packet(&mut self) -> Result<Option<PcapPacket>, PcapError> {
        let index = self.index;
        let mut h = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.r, &mut h)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::Truncated {
                index,
                what: "16-byte record header",
                needed: RECORD_HEADER_LEN,
                left: got,
            });
        }
        let u32_at = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.header.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, caplen, orig_len) = (u32_at(0), u32_at(4), u32_at(8), u32_at(12));
        if caplen > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLong { index, caplen });
        }
        let mut data = vec![0u8; caplen as usize];
        let got = read_full(&mut self.r, &mut data)?;
        if got < data.len() {
            return Err(PcapError::Truncated {
                index,
                what: "captured bytes",
                needed: data.len(),
                left: got,
            });
        }
        let frac_ns = if self.header.nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        self.index += 1;
        Ok(Some(PcapPacket {
            ts_ns: u64::from(secs) * 1_000_000_000 + frac_ns,
            orig_len,
            data,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<PcapPacket, PcapError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet()
    }
}

/// Writes a pcap file: little-endian, nanosecond timestamps.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut w: W, link_type: u32, snaplen: u32) -> io::Result<PcapWriter<W>> {
        let mut h = Vec::with_capacity(FILE_HEADER_LEN);
        h.extend_from_slice(&MAGIC_NANOS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&link_type.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, snaplen })
    }

    /// Writes one packet captured at `ts_ns` (nanoseconds since the epoch; times
    /// past 2106 are clamped) that was `orig_len` bytes on the wire. A packet longer
    /// than the snaplen is cut to it.
    pub fn write_packet(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let cap = data.len().min(self.snaplen as usize);
        let caplen = cap as u32;
        let secs = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nanos = (ts_ns % 1_000_000_000) as u32;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&nanos.to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(&data[..cap])
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A two-packet capture as tcpdump writes it on a little-endian host (µs).
    fn tcpdump_le() -> Vec<u8> {
        let mut f = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
            0, // magic, 2.4, zone, sigfigs
            0xff, 0xff, 0, 0, 1, 0, 0, 0, // snaplen 65535, Ethernet
        ];
        // 1.000002 s, 3 of 60 bytes; 2.5 s, 4 bytes.
        f.extend_from_slice(&[
            1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 60, 0, 0, 0, 0xaa, 0xbb, 0xcc,
        ]);
        f.extend_from_slice(&[
            2, 0, 0, 0, 0x20, 0xa1, 7, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4,
        ]);
        f
    }

    #[test]
    fn reads_a_little_endian_microsecond_capture() {
        let file = tcpdump_le();
        let mut r = PcapReader::new(&file[..]).unwrap();
        assert_eq!(
            r.header(),
            PcapHeader {
                link_type: LINKTYPE_ETHERNET,
                snaplen: 65535,
                nanos: false,
                big_endian: false
            }
        );
        let p: Vec<PcapPacket> = r.by_ref().map(Result::unwrap).collect();
        assert_eq!(
            p,
            vec![
                PcapPacket {
                    ts_ns: 1_000_002_000,
                    orig_len: 60,
                    data: vec![0xaa, 0xbb, 0xcc]
                },
                PcapPacket {
                    ts_ns: 2_500_000_000,
                    orig_len: 4,
                    data: vec![1, 2, 3, 4]
                },
            ]
        );
        assert!(r.next_packet().is_none());
    }

    #[test]
    fn reads_big_endian_nanosecond_captures() {
        let mut f = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 0, 101]); // snaplen 4096, raw IP
        f.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0x45]);
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert_eq!(r.header().link_type, 101);
        assert!(r.header().big_endian && r.header().nanos);
        assert_eq!(r.next_packet().unwrap().unwrap().ts_ns, 3_000_000_007);
        assert_eq!(link_type_name(101), "raw IP");
    }

    #[test]
    fn malformed_files_are_named_errors() {
        let err = |b: &[u8]| PcapReader::new(b).err().map(|e| e.to_string());
        assert_eq!(
            err(b"hello"),
            Some("not a pcap file: 5 bytes, shorter than the 24-byte pcap header".into())
        );
        assert_eq!(
            err(&[b'x'; 40]),
            Some("not a pcap file (magic number 0x78787878)".into())
        );
        assert!(
            err(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0])
                .unwrap()
                .contains("pcapng")
        );
        let mut v = tcpdump_le();
        v[4] = 3;
        assert_eq!(
            err(&v),
            Some("unsupported pcap version 3.4 (2.4 expected)".into())
        );
        // Cut inside the second record's data.
        let f = tcpdump_le();
        let r = PcapReader::new(&f[..f.len() - 1]).unwrap();
        let all: Vec<_> = r.collect();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1].as_ref().unwrap_err().to_string(),
            "packet 1: the file ends inside its captured bytes (4 bytes needed, 3 left)"
        );
        // Cut inside a record header.
        let r = PcapReader::new(&f[..24 + 5]).unwrap();
        assert_eq!(
            r.last().unwrap().unwrap_err().to_string(),
            "packet 0: the file ends inside its 16-byte record header (16 bytes needed, 5 left)"
        );
        // A record claiming 4 GiB: refused before any allocation.
        let mut f = tcpdump_le();
        f[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Some(Err(PcapError::RecordTooLong { index: 0, .. }))
        ));
        assert!(r.next_packet().is_none(), "nothing after an error");
    }

    #[test]
    fn the_writer_cuts_at_the_snaplen() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET, 4).unwrap();
        w.write_packet(5, 0, &[1, 2, 3, 4, 5, 6]).unwrap();
        let f = w.finish().unwrap();
        let p = PcapReader::new(&f[..]).unwrap().next().unwrap().unwrap();
        assert_eq!(p.data, [1, 2, 3, 4]);
        assert_eq!(p.orig_len, 4, "at least the captured length");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = PcapReader::new(&bytes[..]) {
                // The reader stops after an error: flatten cannot spin.
                for p in r.flatten() {
                    prop_assert!(p.data.len() <= MAX_RECORD_LEN as usize);
                }
            }
        }

        #[test]
        fn a_valid_header_then_arbitrary_records_never_panics(
            nanos in any::<bool>(),
            big in any::<bool>(),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let magic = if nanos { MAGIC_NANOS } else { MAGIC_MICROS };
            let mut f = if big { magic.to_be_bytes() } else { magic.to_le_bytes() }.to_vec();
            f.extend_from_slice(&[0; 20]);
            f[if big { 5 } else { 4 }] = 2;
            f.extend_from_slice(&tail);
            let r = PcapReader::new(&f[..]).unwrap();
            let mut n = 0;
            for p in r {
                n += 1;
                prop_assert!(n <= tail.len() / 16 + 1);
                let _ = p;
            }
        }

        #[test]
        fn written_packets_read_back(
            packets in proptest::collection::vec(
                (0u64..4_000_000_000_000_000_000, proptest::collection::vec(any::<u8>(), 0..100)),
                0..10,
            ),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET, 65535).unwrap();
            for (ts, d) in &packets {
                w.write_packet(*ts, d.len() as u32, d).unwrap();
            }
            let file = w.finish().unwrap();
            let back: Vec<PcapPacket> =
                PcapReader::new(&file[..]).unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(back.len(), packets.len());
            for (b, (ts, d)) in back.iter().zip(&packets) {
                prop_assert_eq!(b.ts_ns, *ts);
                prop_assert_eq!(&b.data, d);
            }
            // Cut anywhere after the header: the complete packets, then one error.
            let at = FILE_HEADER_LEN + cut.index(file.len() - FILE_HEADER_LEN + 1);
            let read: Vec<_> = PcapReader::new(&file[..at]).unwrap().collect();
            let ok = read.iter().take_while(|p| p.is_ok()).count();
            prop_assert!(read.len() <= ok + 1);
            prop_assert!(ok <= packets.len());
        }
    }
}
