#!/usr/bin/env bash
# Builds the Debian package of Portcullis from this workspace:
#   scripts/build-deb.sh [OUT_DIR]        → OUT_DIR/portcullis_VERSION_ARCH.deb
# with Debian's own dpkg-deb: the release binary (no debug info), the systemd unit,
# the default configuration (a conffile), man pages and shell completions generated
# from the CLI, the docs, and maintainer scripts that create the `portcullis`
# group. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/deb}"
mkdir -p "$out"
cargo build --release --locked -p portcullis >&2
bin=target/release/portcullis
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin" "$stage/usr/bin/portcullis"
# The CNI plugin, in Debian's CNI plugin directory (beside host-local; docs/cni.md).
install -D -m 0755 target/release/portcullis-cni "$stage/usr/lib/cni/portcullis-cni"
# The ovs-vsctl front, under its own name only: installing it as ovs-vsctl is the
# operator's choice (docs/ovs-vsctl.md), never the package's.
install -D -m 0755 target/release/portcullis-ovs-vsctl "$stage/usr/bin/portcullis-ovs-vsctl"
# libvirt's QEMU hook (docs/libvirt.md); not installed into /etc/libvirt/hooks:
# the operator opts in there.
install -D -m 0755 target/release/portcullis-libvirt-hook "$stage/usr/bin/portcullis-libvirt-hook"
install -D -m 0644 packaging/portcullis.service "$stage/lib/systemd/system/portcullis.service"
install -D -m 0644 packaging/switch.toml "$stage/etc/portcullis/switch.toml"
"$bin" generate man "$stage/usr/share/man/man1" >&2
gzip -9n "$stage"/usr/share/man/man1/*.1
"$bin" generate completions "$stage/tmp-completions" >&2
install -D -m 0644 "$stage/tmp-completions/portcullis.bash" "$stage/usr/share/bash-completion/completions/portcullis"
install -D -m 0644 "$stage/tmp-completions/_portcullis" "$stage/usr/share/zsh/vendor-completions/_portcullis"
install -D -m 0644 "$stage/tmp-completions/portcullis.fish" "$stage/usr/share/fish/vendor_completions.d/portcullis.fish"
rm -rf "$stage/tmp-completions"
for d in README.md docs/install.md docs/config.md docs/api.md docs/decisions.md docs/licences.md docs/cni.md docs/ovs-vsctl.md docs/libvirt.md; do
    install -D -m 0644 "$d" "$stage/usr/share/doc/portcullis/$(basename "$d")"
done
mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: portcullis
Version: $version
Architecture: $arch
Maintainer: Portcullis developers <portcullis@localhost>
Installed-Size: $size
Depends: libc6, adduser, iproute2
Recommends: systemd
Suggests: containernetworking-plugins
Section: net
Priority: optional
Homepage: https://example.invalid/portcullis
Description: secure virtual switch for KVM, libvirt, Proxmox and container hosts
 Portcullis switches the traffic of a host's guests (TAP, veth) and its uplinks
 and stops a guest from impersonating anyone else: port security, MAC ACLs,
 storm control, DHCP snooping with a durable binding table, ARP inspection,
 IP Source Guard, IPv6 first-hop security, NIC teaming, an audited, role-checked
 API, golden profiles with drift checks, top and Prometheus metrics.
CONTROL
deb="$out/portcullis_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
