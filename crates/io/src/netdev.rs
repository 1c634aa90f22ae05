//! Interface queries and link control by name: index, existence, MAC, MTU, IFF_UP.
//!
//! Each call opens a throw-away `AF_INET`/`SOCK_DGRAM` socket and issues one or two
//! `SIOC*IF*` ioctls on it, so it acts in the network namespace of the calling thread.
//! Names are validated the way the kernel does before any system call.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::IoError;

/// Fails with [`IoError::InvalidName`] unless `name` is a valid Linux interface name.
pub(crate) fn validate_name(name: &str) -> Result<(), IoError> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(IoError::InvalidName(name.to_owned()))
    }
}

/// A zeroed `ifreq` carrying `name`.
pub(crate) fn ifreq_for(name: &str) -> Result<libc::ifreq, IoError> {
    validate_name(name)?;
    // SAFETY: `ifreq` is a C struct of a byte array and a union of integers, arrays,
    // `sockaddr`s and a raw pointer; all-zero bytes are a valid value of each.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// `socket(2)` wrapped into an `OwnedFd`.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
    iface: &str,
    op: &'static str,
) -> Result<OwnedFd, IoError> {
    // SAFETY: socket(2) takes no pointers; any argument values are memory-safe.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(IoError::last_os(iface, op));
    }
    // SAFETY: `fd` was just returned by socket(2): it is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn control_socket(iface: &str) -> Result<OwnedFd, IoError> {
    socket(
        libc::AF_INET,
        libc::SOCK_DGRAM,
        0,
        iface,
        "socket(AF_INET) for interface ioctls",
    )
}

/// Issues an interface ioctl; `ENODEV` becomes [`IoError::NoSuchInterface`].
fn ifreq_ioctl(
    fd: &OwnedFd,
    request: libc::c_ulong,
    ifr: &mut libc::ifreq,
    iface: &str,
    op: &'static str,
) -> Result<(), IoError> {
    // SAFETY: every SIOC*IF* request used here reads and/or writes exactly one
    // `struct ifreq`, and `ifr` points to a valid, exclusively borrowed one.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, ifr as *mut libc::ifreq) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(IoError::NoSuchInterface(iface.to_owned()));
        }
        return Err(IoError::os(iface, op, err));
    }
    Ok(())
}

/// The interface index of `ifname` (`if_nametoindex(3)`).
pub fn interface_index(ifname: &str) -> Result<u32, IoError> {
    validate_name(ifname)?;
    let c = CString::new(ifname).map_err(|_| IoError::InvalidName(ifname.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) | None | Some(0) => {
                Err(IoError::NoSuchInterface(ifname.to_owned()))
            }
            _ => Err(IoError::os(ifname, "if_nametoindex", err)),
        };
    }
    Ok(index)
}

/// `SIOCBRADDIF` and `SIOCBRDELIF` (linux/sockios.h): enslave an interface to a
/// Linux bridge, or release it, by the interface's index in `ifr_ifindex`.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;
const SIOCBRDELIF: libc::c_ulong = 0x89a3;

fn bridge_port(bridge: &str, ifname: &str, add: bool) -> Result<(), IoError> {
    let index = interface_index(ifname)?;
    let mut ifr = ifreq_for(bridge)?;
    ifr.ifr_ifru.ifru_ifindex = index as libc::c_int;
    let fd = control_socket(bridge)?;
    let (request, op) = if add {
        (SIOCBRADDIF, "ioctl(SIOCBRADDIF)")
    } else {
        (SIOCBRDELIF, "ioctl(SIOCBRDELIF)")
    };
    ifreq_ioctl(&fd, request, &mut ifr, bridge, op)
}

/// Makes `ifname` a port of the Linux bridge `bridge` (`ip link set IF master BR`).
pub fn bridge_add_port(bridge: &str, ifname: &str) -> Result<(), IoError> {
    bridge_port(bridge, ifname, true)
}

/// Takes `ifname` out of the Linux bridge `bridge` (`ip link set IF nomaster`); the
/// bridge forgets the MACs it learned on it.
pub fn bridge_remove_port(bridge: &str, ifname: &str) -> Result<(), IoError> {
    bridge_port(bridge, ifname, false)
}

/// Every interface of the calling thread's network namespace, by name, with its
/// index: one `if_nameindex(3)` call (one netlink dump), for callers that would
/// otherwise ask about many names one system call each.
pub fn interface_indexes() -> Result<std::collections::HashMap<String, u32>, IoError> {
    // SAFETY: if_nameindex takes no arguments; it returns NULL on failure or an
    // array terminated by an entry with index 0 and a NULL name, which we free with
    // if_freenameindex below and do not use after.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(IoError::os(
            "*",
            "if_nameindex",
            std::io::Error::last_os_error(),
        ));
    }
    let mut out = std::collections::HashMap::new();
    let mut i = 0;
    loop {
        // SAFETY: `list` is the array if_nameindex returned; every entry up to and
        // including the terminator is readable, and we stop at the terminator.
        let entry = unsafe { &*list.add(i) };
        if entry.if_index == 0 || entry.if_name.is_null() {
            break;
        }
        // SAFETY: a non-terminator entry's name is a NUL-terminated string owned by
        // the array, alive until if_freenameindex.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.if_name) };
        out.insert(name.to_string_lossy().into_owned(), entry.if_index);
        i += 1;
    }
    // SAFETY: `list` came from if_nameindex and is freed once, after its last use.
    unsafe { libc::if_freenameindex(list) };
    Ok(out)
}

/// Whether an interface named `ifname` exists in the calling thread's network
/// namespace.
pub fn interface_exists(ifname: &str) -> bool {
    interface_index(ifname).is_ok()
}

/// The hardware (MAC) address of `ifname` (`SIOCGIFHWADDR`).
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], IoError> {
    let mut ifr = ifreq_for(ifname)?;
    let fd = control_socket(ifname)?;
    ifreq_ioctl(
        &fd,
        libc::SIOCGIFHWADDR,
        &mut ifr,
        ifname,
        "ioctl(SIOCGIFHWADDR)",
    )?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the kernel filled `ifru_hwaddr`; every bit
    // pattern is a valid `sockaddr`.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

/// The MTU of `ifname` (`SIOCGIFMTU`).
pub fn interface_mtu(ifname: &str) -> Result<u32, IoError> {
    let mut ifr = ifreq_for(ifname)?;
    let fd = control_socket(ifname)?;
    ifreq_ioctl(&fd, libc::SIOCGIFMTU, &mut ifr, ifname, "ioctl(SIOCGIFMTU)")?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel filled `ifru_mtu` (a plain integer).
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// Reads the interface flags (SIOCGIFFLAGS); returns the control socket and the
/// filled request for a following SIOCSIFFLAGS, and the flags.
fn read_flags(ifname: &str) -> Result<(OwnedFd, libc::ifreq, libc::c_int), IoError> {
    let mut ifr = ifreq_for(ifname)?;
    let fd = control_socket(ifname)?;
    ifreq_ioctl(
        &fd,
        libc::SIOCGIFFLAGS,
        &mut ifr,
        ifname,
        "ioctl(SIOCGIFFLAGS)",
    )?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel filled `ifru_flags` (a plain
    // integer).
    let flags = libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags }) & 0xffff;
    Ok((fd, ifr, flags))
}

fn update_flags(ifname: &str, set: libc::c_int, clear: libc::c_int) -> Result<(), IoError> {
    let (fd, mut ifr, flags) = read_flags(ifname)?;
    let wanted = (flags | set) & !clear;
    if wanted == flags {
        return Ok(());
    }
    ifr.ifr_ifru.ifru_flags = wanted as libc::c_short;
    ifreq_ioctl(
        &fd,
        libc::SIOCSIFFLAGS,
        &mut ifr,
        ifname,
        "ioctl(SIOCSIFFLAGS)",
    )
}

/// Sets `IFF_UP` on `ifname` (administratively up), like `ip link set dev IF up`.
pub fn set_link_up(ifname: &str) -> Result<(), IoError> {
    update_flags(ifname, libc::IFF_UP, 0)
}

/// Clears `IFF_UP` on `ifname` (administratively down).
pub fn set_link_down(ifname: &str) -> Result<(), IoError> {
    update_flags(ifname, 0, libc::IFF_UP)
}

/// Whether `ifname` can carry frames: administratively up and with carrier
/// (`IFF_UP` and `IFF_RUNNING`).
pub fn is_link_running(ifname: &str) -> Result<bool, IoError> {
    let flags = read_flags(ifname)?.2;
    Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// Whether `ifname` is administratively up (`IFF_UP`).
pub fn is_link_up(ifname: &str) -> Result<bool, IoError> {
    Ok(read_flags(ifname)?.2 & libc::IFF_UP != 0)
}

/// `ETHTOOL_GTXCSUM`: get TX checksum offload (legacy ethtool command).
const ETHTOOL_GTXCSUM: u32 = 0x16;
/// `ETHTOOL_STXCSUM`: set TX checksum offload (legacy ethtool command).
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `ETHTOOL_GTSO`: get TCP segmentation offload (legacy ethtool command).
const ETHTOOL_GTSO: u32 = 0x1e;
/// `ETHTOOL_STSO`: set TCP segmentation offload (legacy ethtool command).
const ETHTOOL_STSO: u32 = 0x1f;

/// `struct ethtool_value` from `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Issues one `SIOCETHTOOL` command carrying a `struct ethtool_value`; returns its
/// `data` afterwards.
fn ethtool_value(ifname: &str, cmd: u32, data: u32, op: &'static str) -> Result<u32, IoError> {
    let mut ifr = ifreq_for(ifname)?;
    let fd = control_socket(ifname)?;
    let mut value = EthtoolValue { cmd, data };
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL reads `ifr` (a valid, exclusively borrowed `ifreq`) and,
    // for the GTXCSUM/STXCSUM/GTSO/STSO commands, reads/writes exactly one `ethtool_value`
    // through `ifru_data`, which points to `value`, alive and unaliased until the call
    // returns.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCETHTOOL as _,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(IoError::NoSuchInterface(ifname.to_owned()));
        }
        return Err(IoError::os(ifname, op, err));
    }
    Ok(value.data)
}

/// Whether `ifname` offloads TX checksums (`ethtool -k IF`, "tx-checksumming").
pub fn tx_checksum_offload(ifname: &str) -> Result<bool, IoError> {
    ethtool_value(
        ifname,
        ETHTOOL_GTXCSUM,
        0,
        "ioctl(SIOCETHTOOL, ETHTOOL_GTXCSUM)",
    )
    .map(|v| v != 0)
}

/// Turns TX checksum offload of `ifname` on or off, like `ethtool -K IF tx on|off`
/// (turning it off also turns TSO off, which depends on it).
///
/// Why the switch cares (DESIGN §9): a frame that a local stack sends on a veth with
/// TX offloads reaches the peer's AF_PACKET socket with its L4 checksum not yet
/// computed (and, with TSO, as one super-frame of up to 64 KiB). A userspace switch
/// that forwards such frames without virtio-net headers delivers corrupt or oversize
/// frames. Portcullis's AF_PACKET ports carry virtio-net headers
/// ([`crate::AfPacketOptions::vnet_hdr`]), so guests keep their offloads; turning the
/// offload off on the *sending* end (e.g. the namespace or container side of a veth
/// port) makes its kernel finish every frame in software, which a port without
/// virtio-net headers needs (and the tests use to compare both ways).
pub fn set_tx_checksum_offload(ifname: &str, enabled: bool) -> Result<(), IoError> {
    ethtool_value(
        ifname,
        ETHTOOL_STXCSUM,
        u32::from(enabled),
        "ioctl(SIOCETHTOOL, ETHTOOL_STXCSUM)",
    )
    .map(|_| ())
}

/// Whether `ifname` does TCP segmentation offload (`ethtool -k IF`,
/// "tcp-segmentation-offload": any of TSO/TSO6/… on). An AF_PACKET port hands GSO
/// super-frames whole only to an interface that does (see
/// [`crate::AfPacketTx::takes_gso`]).
pub fn tcp_segmentation_offload(ifname: &str) -> Result<bool, IoError> {
    ethtool_value(ifname, ETHTOOL_GTSO, 0, "ioctl(SIOCETHTOOL, ETHTOOL_GTSO)").map(|v| v != 0)
}

/// Turns TCP segmentation offload of `ifname` on or off, like `ethtool -K IF tso
/// on|off`.
pub fn set_tcp_segmentation_offload(ifname: &str, enabled: bool) -> Result<(), IoError> {
    ethtool_value(
        ifname,
        ETHTOOL_STSO,
        u32::from(enabled),
        "ioctl(SIOCETHTOOL, ETHTOOL_STSO)",
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_before_any_syscall() {
        for bad in ["", "a/b", "a:b", "a b", "0123456789abcdef", ".", ".."] {
            assert!(
                matches!(validate_name(bad), Err(IoError::InvalidName(_))),
                "{bad:?}"
            );
            assert!(!interface_exists(bad));
        }
        assert!(validate_name("0123456789abcde").is_ok());
        assert!(validate_name("eth0.10").is_ok());
    }

    #[test]
    fn loopback_is_found() {
        assert!(interface_exists("lo"));
        assert_eq!(interface_mac("lo").unwrap(), [0; 6]);
        assert!(interface_mtu("lo").unwrap() >= 1500);
    }

    #[test]
    fn missing_interface_is_reported_by_name() {
        let name = "pio-missing0";
        assert!(!interface_exists(name));
        match interface_mac(name) {
            Err(IoError::NoSuchInterface(n)) => assert_eq!(n, name),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            interface_mtu(name),
            Err(IoError::NoSuchInterface(_))
        ));
        let err = set_link_up(name).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}
