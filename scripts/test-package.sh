#!/usr/bin/env bash
# The Debian package, checked as an operator would meet it (scripts/test.sh runs
# this): built by scripts/build-deb.sh, its control fields and conffiles, its files
# unpacked into a clean root, the binary from that root (release, no debug
# information), the systemd unit verified by systemd-analyze against that root, the
# default configuration validated by the packaged binary, the man pages and
# completions present and well-formed, the maintainer scripts' syntax. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-package: $*" >&2; exit 1; }
for tool in dpkg-deb systemd-analyze readelf; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-pkgtest.XXXXXX")
trap 'rm -rf "$work"' EXIT
deb=$(scripts/build-deb.sh "$work/out" | tail -1)
[ -f "$deb" ] || fail "no package built"

# Control fields and conffiles.
[ "$(dpkg-deb -f "$deb" Package)" = portcullis ] || fail "Package"
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture"
dpkg-deb -f "$deb" Depends | grep -q adduser || fail "Depends lacks adduser (postinst's addgroup)"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/portcullis/switch.toml \
  || fail "switch.toml is not a conffile"

# Unpacked into a clean root: every file where the unit and the docs say.
root="$work/root"
mkdir -p "$root"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/portcullis usr/bin/portcullis-ovs-vsctl lib/systemd/system/portcullis.service etc/portcullis/switch.toml \
  usr/share/man/man1/portcullis.1.gz usr/share/man/man1/portcullis-daemon.1.gz \
  usr/share/man/man1/portcullis-show-ports.1.gz \
  usr/share/bash-completion/completions/portcullis usr/share/zsh/vendor-completions/_portcullis \
  usr/share/fish/vendor_completions.d/portcullis.fish usr/share/doc/portcullis/install.md \
  usr/bin/portcullis-libvirt-hook usr/share/doc/portcullis/libvirt.md; do
  [ -e "$root/$f" ] || fail "missing /$f"
done
if dpkg-deb -c "$deb" | awk '{print $2}' | grep -v '^root/root$' | grep -q .; then
  fail "files not owned by root:root"
fi

# The binary: runs from the root, release without debug information, small.
bin="$root/usr/bin/portcullis"
"$bin" --version | grep -q '^portcullis ' || fail "the binary does not run"
if readelf -S "$bin" | grep -q '\.debug_info'; then fail "the binary carries debug information"; fi
# The ovs-vsctl front runs, and the package never installs it as ovs-vsctl.
"$root/usr/bin/portcullis-ovs-vsctl" --version | grep -q 'portcullis-ovs-vsctl' \
  || fail "portcullis-ovs-vsctl does not run"
if dpkg-deb -c "$deb" | grep -q '/ovs-vsctl$'; then fail "the package installs an ovs-vsctl"; fi
size=$(stat -c %s "$bin")
[ "$size" -lt $((40 * 1024 * 1024)) ] || fail "the binary is $size bytes"
echo "test-package: binary $((size / 1024 / 1024)) MiB, no debug info"
# The libvirt hook runs from the root too, and does nothing for an unrelated call.
"$root/usr/bin/portcullis-libvirt-hook" --version | grep -q '^portcullis-libvirt-hook ' \
  || fail "portcullis-libvirt-hook does not run"
"$root/usr/bin/portcullis-libvirt-hook" vm1 started begin - </dev/null \
  || fail "portcullis-libvirt-hook fails a call it has nothing to do for"

# The CNI plugin answers VERSION as the CNI spec says.
CNI_COMMAND=VERSION "$root/usr/lib/cni/portcullis-cni" <<<'{"cniVersion": "1.1.0"}' 2>&1 | grep -q '"supportedVersions":\[.*"1.1.0"' \
  || fail "portcullis-cni does not answer VERSION"
[ -e "$root/usr/share/doc/portcullis/cni.md" ] || fail "missing /usr/share/doc/portcullis/cni.md"

# The default configuration is valid for the packaged binary.
"$bin" validate "$root/etc/portcullis/switch.toml" | grep -q 'valid (0 ports)' \
  || fail "the default configuration does not validate"

# The unit, verified by systemd: its directives, its commands (the packaged binary,
# by its path in the root) and its documentation (the packaged man page).
unit="$root/lib/systemd/system/portcullis.service"
sed "s#/usr/bin/portcullis#$root/usr/bin/portcullis#g" "$unit" > "$work/portcullis.service"
out=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$work/portcullis.service" 2>&1) \
  || fail "systemd-analyze verify: $out"
if [ -n "$out" ]; then fail "systemd-analyze verify warns: $out"; fi
grep -qx 'Type=notify' "$unit" || fail "not Type=notify"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$unit" || fail "no reload by SIGHUP"
grep -q '^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON CAP_IPC_LOCK CAP_CHOWN$' "$unit" \
  || fail "capabilities differ from docs/install.md"
for d in StateDirectory=portcullis RuntimeDirectory=portcullis NoNewPrivileges=yes ProtectSystem=strict; do
  grep -qx "$d" "$unit" || fail "unit lacks $d"
done

# Man pages render their command; completions parse; maintainer scripts parse.
zcat "$root/usr/share/man/man1/portcullis-daemon.1.gz" | grep -q '^\.TH portcullis-daemon 1' \
  || fail "portcullis-daemon(1) has no title"
zcat "$root/usr/share/man/man1/portcullis-daemon.1.gz" | grep -q 'state\\-dir' \
  || fail "portcullis-daemon(1) lacks --state-dir"
bash -n "$root/usr/share/bash-completion/completions/portcullis" || fail "bash completion"
grep -q 'complete -c portcullis' "$root/usr/share/fish/vendor_completions.d/portcullis.fish" \
  || fail "fish completion"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./postinst ./prerm ./postrm
for s in postinst prerm postrm; do sh -n "$work/$s" || fail "$s does not parse"; done
grep -q 'addgroup --system portcullis' "$work/postinst" || fail "postinst does not create the group"
echo "test-package: $(basename "$deb") ok"
