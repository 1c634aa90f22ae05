#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages), then runs
# formatting and lint checks and every test, lab tests with real programs included.
# Needs root (the lab tests create network namespaces). Never skips: a missing
# privilege or tool fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the lab tests create network namespaces and need root; run: sudo scripts/test.sh" >&2
  exit 1
fi

# Debian packages the tests use: iproute2 (ip), iputils-ping (ping), tcpdump,
# python3-scapy (forged frames; for /usr/bin/python3), procps (sysctl), dsniff
# (macof, arpspoof), dnsmasq-base (DHCP server), udhcpc (DHCP client), nmap (host
# discovery to compare `portcullis hosts` with), iperf3 (TCP through the switch
# with offloads on), ethtool (the guests' offload settings), radvd (the router of
# the RA guard lab), isc-dhcp-client (dhclient -6, the DHCPv6 client of the IPv6 lab),
# chromium and fonts-dejavu-core (lab_web opens the web view in a real headless
# browser and checks its screenshots; without recommends chromium brings no font).
packages=(iproute2 iputils-ping tcpdump python3-scapy procps dsniff dnsmasq-base udhcpc nmap iperf3 ethtool radvd isc-dhcp-client chromium fonts-dejavu-core)
# containernetworking-plugins: host-local, the IPAM plugin lab_cni chains with
# portcullis-cni; podman and runc: lab_cni runs a container through the plugin with
# podman's CNI backend (runc: crun refuses a hybrid cgroup hierarchy); busybox-static:
# that container's root filesystem (no image registry is needed).
packages+=(containernetworking-plugins podman runc busybox-static)
# systemd-container: systemd-nspawn, which boots this host's Debian with systemd as
# PID 1 for scripts/test-systemd.sh (the package's unit under a real systemd); jq:
# that script reads the API's JSON (the container runs this host's programs).
packages+=(systemd-container jq)
# protobuf-compiler: protoc, which etcd's client crate needs to build; etcd-server
# and etcd-client (etcdctl): lab_cluster runs a real etcd in a lab namespace and
# reads what the hosts wrote to it.
packages+=(protobuf-compiler etcd-server etcd-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# lab_libvirt: a real libvirtd (libvirt-daemon, libvirt-clients,
# libvirt-daemon-driver-qemu) runs a real QEMU/TCG guest: a Debian kernel
# (linux-image-amd64, unpacked with xz-utils) and a busybox-static initramfs the
# test builds. QEMU comes from bookworm-backports with its qemu-utils, which this
# image already has from there: Debian 12's qemu-system-x86 would replace them
# (DESIGN §10). lab_vhost_user boots the same guest with QEMU 10 directly.
libvirt_packages=(libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu linux-image-amd64 busybox-static xz-utils)
qemu_packages=(qemu-system-x86 qemu-utils qemu-system-common qemu-system-data seabios)
missing=()
for p in "${libvirt_packages[@]}" "${qemu_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing for lab_libvirt: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      >/etc/apt/sources.list.d/bookworm-backports.sources
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${libvirt_packages[@]}" "${qemu_packages[@]/%//bookworm-backports}"
fi

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo check -p portcullis --no-default-features --locked # the build without AF_XDP (no EUPL code, docs/licences.md)
cargo test --workspace --locked -- --test-threads=2
# The lab suite again with every guest port on AF_XDP (the fast path is covered by
# the same lab tests as the slow one; a port that falls back to AF_PACKET fails).
# lab_af_xdp and lab_offload choose their backends themselves: they ran above.
# lab_web's subject is the page, which does not depend on the backend; runtime ports
# are on AF_PACKET whatever the pass (lab_runtime_ports, lab_adopt, lab_cni,
# lab_ovs_vsctl: the ports the ovs-vsctl front adds, lab_libvirt's guest TAP, and
# lab_cluster's guests, runtime ports on every host); lab_vhost_user's subject is
# the vhost-user port (its veth guest is on AF_PACKET by choice);
# lab_port_churn is a measurement run by hand.
xdp_pass=()
for f in crates/cli/tests/lab_*.rs; do
  t=$(basename "$f" .rs)
  case "$t" in lab_af_xdp | lab_offload | lab_web | lab_runtime_ports | lab_adopt | lab_cni | lab_ovs_vsctl | lab_port_churn | lab_libvirt | lab_cluster | lab_vhost_user) ;; *) xdp_pass+=(--test "$t") ;; esac
done
PORTCULLIS_LAB_BACKEND=af_xdp cargo test -p portcullis --locked "${xdp_pass[@]}" --test daemon_lifecycle -- --test-threads=2
# The Debian package, built and checked in a clean root (docs/install.md).
scripts/test-package.sh
# The package installed and its unit driven under a real systemd (docs/install.md).
scripts/test-systemd.sh
# The README's first command, exactly (the release build the package test made is
# reused): the demo runs and reports.
scripts/demo.sh >/tmp/portcullis-demo.$$.log 2>&1 || {
  tail -30 /tmp/portcullis-demo.$$.log >&2
  rm -f /tmp/portcullis-demo.$$.log
  echo "scripts/test.sh: scripts/demo.sh (the README's first command) failed" >&2
  exit 1
}
rm -f /tmp/portcullis-demo.$$.log
