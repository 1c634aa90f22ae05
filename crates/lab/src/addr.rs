//! The lab's address rule: only 198.18.0.0/15 (RFC 2544 benchmarking range).

use std::net::Ipv4Addr;

use crate::LabError;

/// The first address of the only range the lab uses: 198.18.0.0.
pub const LAB_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// The prefix length of the lab range: /15 (198.18.0.0 – 198.19.255.255).
pub const LAB_PREFIX: u8 = 15;

const LAB_MASK: u32 = 0xfffe_0000;

/// True if `ip` lies in 198.18.0.0/15.
pub fn in_lab_range(ip: Ipv4Addr) -> bool {
    u32::from(ip) & LAB_MASK == u32::from(LAB_NET)
}

fn reject(addr: &str, reason: impl Into<String>) -> LabError {
    LabError::AddrRejected {
        addr: addr.to_string(),
        reason: reason.into(),
    }
}

/// Parses a bare IPv4 address and checks that it lies in 198.18.0.0/15.
pub fn check_addr(addr: &str) -> Result<Ipv4Addr, LabError> {
    let ip: Ipv4Addr = addr
        .trim()
        .parse()
        .map_err(|_| reject(addr, "not an IPv4 address"))?;
    if !in_lab_range(ip) {
        return Err(reject(addr, "outside 198.18.0.0/15"));
    }
    Ok(ip)
}

/// Parses `a.b.c.d/len` and checks that the address lies in 198.18.0.0/15 and that
/// the whole subnet does too (so `len` must be 15..=32).
pub fn check_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), LabError> {
    let (a, l) = cidr
        .trim()
        .split_once('/')
        .ok_or_else(|| reject(cidr, "expected address/prefix-length, e.g. 198.18.0.1/24"))?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| reject(cidr, "prefix length must be 0..=32"))?;
    let ip: Ipv4Addr = a.parse().map_err(|_| reject(cidr, "not an IPv4 address"))?;
    if !in_lab_range(ip) {
        return Err(reject(cidr, "outside 198.18.0.0/15"));
    }
    if len < LAB_PREFIX {
        return Err(reject(
            cidr,
            "prefix shorter than /15 would make addresses outside the range on-link",
        ));
    }
    Ok((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_range() {
        assert!(check_addr("198.18.0.1").is_ok());
        assert!(check_addr("198.19.255.255").is_ok());
        assert_eq!(
            check_cidr("198.18.1.2/24").unwrap(),
            (Ipv4Addr::new(198, 18, 1, 2), 24)
        );
        assert!(check_cidr("198.19.0.1/15").is_ok());
        assert!(check_cidr("198.19.0.1/32").is_ok());
    }

    #[test]
    fn rejects_others() {
        for bad in [
            "198.17.255.255",
            "198.20.0.0",
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "fe80::1",
            "",
            "198.18.0",
            "198.18.0.1/24",
        ] {
            assert!(
                matches!(check_addr(bad), Err(LabError::AddrRejected { .. })),
                "{bad}"
            );
        }
        for bad in [
            "10.0.0.1/24",
            "198.18.0.1",
            "198.18.0.1/14",
            "198.18.0.1/8",
            "198.18.0.1/33",
            "198.18.0.1/x",
            "198.20.0.1/24",
            "/24",
        ] {
            assert!(
                matches!(check_cidr(bad), Err(LabError::AddrRejected { .. })),
                "{bad}"
            );
        }
    }
}
