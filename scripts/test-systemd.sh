#!/usr/bin/env bash
# The Debian package under a real systemd (scripts/test.sh runs this after
# test-package.sh): an ephemeral copy of this host's Debian booted by
# systemd-nspawn with systemd as PID 1 and a private network, the package
# installed with dpkg, and the unit driven as an operator does —
#   start    active only once READY=1, the API serving at once, logs in the journal
#            with the journal's timestamp only;
#   reload   a changed file applied hitlessly (a 100/s ping between two guests
#            loses nothing), the same main PID; a file that does not validate
#            refused, nothing changed;
#   restart  back with what was applied through the API (not the file), the
#            runtime port, the static and the API binding, and both TAPs;
#   upgrade  (the package over itself) restarts it, the same way back;
#   remove   / purge leave what docs/install.md says.
#   scripts/test-systemd.sh [DEB]   (the package to test; default: built now)
# Needs root and systemd-nspawn (Debian's systemd-container). Fails loudly; removes
# everything it made, even on failure (the container powered off by its nspawn's
# PID, the read-only bind mount of / gone with its private mount namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

fail() { echo "test-systemd: FAIL: $*" >&2; exit 1; }
say() { echo "test-systemd: $*"; }
[ "$(id -u)" = 0 ] || fail "needs root (systemd-nspawn, network namespaces)"
for tool in systemd-nspawn unshare nsenter timeout pgrep jq; do
  command -v "$tool" >/dev/null || fail "$tool is missing (systemd-nspawn: apt-get install systemd-container)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-systemd.XXXXXX")
machine="pcl-systemd-$$"
launcher=""
nspawn=""
init=""
cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -n "$init" ] && kill -0 "$init" 2>/dev/null; then
    echo "test-systemd: the unit's journal (last lines):" >&2
    timeout 10 nsenter -t "$init" -a journalctl --no-pager -o short-precise -n 30 -u portcullis.service >&2
  fi
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
    # SIGTERM to nspawn (or, before it is known, to the timeout that runs it and
    # passes the signal on): the container's systemd powers off in order. The
    # timeout kills nspawn 10 s later if it has not ended.
    [ -z "$nspawn" ] && nspawn=$(pgrep -P "$launcher" -x systemd-nspawn)
    kill -TERM "${nspawn:-$launcher}"
    for _ in $(seq 150); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.2; done
    # Still there after 30 s: the container's PID 1 (its whole PID namespace),
    # nspawn, the timeout — each by the PID this script found.
    if kill -0 "$launcher" 2>/dev/null; then
      for p in $init $nspawn $launcher; do kill -KILL "$p" 2>/dev/null; done
    fi
  fi
  [ -n "$launcher" ] && wait "$launcher" 2>/dev/null
  if [ $rc -ne 0 ] && [ -s "$work/nspawn.log" ]; then
    echo "test-systemd: the container's console (last lines):" >&2
    tail -25 "$work/nspawn.log" >&2
  fi
  # The bind mount lived in the launcher's private mount namespace: gone with it,
  # so the mount point is an empty directory (rmdir, never rm -rf through a mount).
  rmdir "$work/root" 2>/dev/null
  rm -rf "$work"
  rmdir "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
  echo "test-systemd: $([ $rc -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - started)) s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

deb="${1:-}"
if [ -z "$deb" ]; then
  deb=$(scripts/build-deb.sh "$work/out" | tail -1)
fi
[ -f "$deb" ] || fail "no package: $deb"
mkdir -p "$work/pkg" "$work/root"
cp "$deb" "$work/pkg/portcullis.deb"

# Boot: / bind-mounted read-only in a private mount namespace, an overlay on tmpfs
# over it (--volatile=overlay: nothing reaches the host's disk), a network namespace
# of its own, CAP_BPF, CAP_PERFMON and CAP_IPC_LOCK and the bpf() system call as on
# a host (nspawn's default set lacks the three, and its seccomp filter allows bpf()
# only with CAP_SYS_ADMIN; the unit asks for them). At most 5 minutes, whatever
# happens.
say "booting $(. /etc/os-release; echo "$PRETTY_NAME") under systemd-nspawn ($machine)"
unshare --mount --propagation private -- bash -c '
  set -e
  mount --bind / "$1"
  mount -o remount,bind,ro "$1"
  exec timeout --kill-after=10 300 systemd-nspawn --quiet -D "$1" --volatile=overlay \
    --machine="$2" --register=no --keep-unit --private-network \
    --capability=CAP_BPF,CAP_PERFMON,CAP_IPC_LOCK --system-call-filter=bpf \
    --bind-ro="$3":/mnt/portcullis-test --console=passive \
    --boot systemd.firstboot=off systemd.log_color=0' _ "$work/root" "$machine" "$work/pkg" >"$work/nspawn.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do
  kill -0 "$launcher" 2>/dev/null || fail "systemd-nspawn exited: $(cat "$work/nspawn.log")"
  nspawn=$(pgrep -P "$launcher" -x systemd-nspawn || true)
  [ -n "$nspawn" ] && init=$(pgrep -P "$nspawn" -x systemd || true)
  [ -n "$init" ] && break
  sleep 0.1
done
[ -n "$init" ] || fail "no systemd in the container: $(cat "$work/nspawn.log")"

# A command in the container (every namespace of its PID 1), a clean environment.
in_ct() {
  timeout 60 nsenter -t "$init" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
# A command in guest G's network namespace in the container.
in_guest() {
  local g=$1
  shift
  in_ct ip netns exec "$g" "$@"
}
prop() { in_ct systemctl show -P "$1" portcullis.service; }
journal() { in_ct journalctl --no-pager -o cat -u portcullis.service; }
# Whether the unit's journal has a line matching the pattern within 5 s: the
# daemon's lines come through its stdout stream, which journald may read after
# systemd's own message about the same moment ("Reloaded …").
journal_has() {
  for _ in $(seq 50); do
    journal | grep -q -- "$1" && return 0
    sleep 0.1
  done
  return 1
}

# systemd's bus comes up a moment after PID 1 starts: until then, no state at all.
state=""
for _ in $(seq 100); do
  state=$(in_ct systemctl is-system-running --wait 2>/dev/null || true)
  [ -n "$state" ] && break
  sleep 0.1
done
case "$state" in
  running | degraded) ;;
  *) fail "the container's systemd is $state" ;;
esac
[ "$(in_ct cat /proc/1/comm)" = systemd ] || fail "PID 1 in the container is not systemd"
say "booted: systemd $(in_ct systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($state, $(($(date +%s) - started)) s)"

# 1. Install: the package's Depends are in the host's (so the container's) OS.
out=$(in_ct dpkg -i /mnt/portcullis-test/portcullis.deb 2>&1) || fail "dpkg -i: $out"
[ "$(in_ct systemctl is-enabled portcullis.service)" = enabled ] || fail "not enabled by the postinst"
if in_ct systemctl is-active --quiet portcullis.service; then fail "started on install (docs: enabled, not started)"; fi
in_ct getent group portcullis >/dev/null || fail "no portcullis group"
say "installed $(in_ct dpkg-query -W -f='${Package} ${Version}' portcullis): enabled, not started"

# 2. Guests a, b, c: veths whose far ends live in network namespaces in the
# container; the switch's side joins the switch. Addresses from 198.18.0.0/15.
for g in a b c; do
  in_ct ip netns add "g$g"
  in_ct ip link add "pc$g" type veth peer name eth0 netns "g$g"
  in_guest "g$g" ip link set eth0 address "02:00:00:00:00:0$g"
  in_ct ip link set "pc$g" up
  in_guest "g$g" ip link set lo up
  in_guest "g$g" ip link set eth0 up
done
mac_of() { in_guest "g$1" cat /sys/class/net/eth0/address; }
in_guest ga ip addr add 198.18.10.1/16 dev eth0
in_guest gb ip addr add 198.18.10.2/16 dev eth0
in_guest gc ip addr add 198.18.10.3/16 dev eth0

# The configuration: group web with DHCP snooping (a, b and a VM's TAP the switch
# creates), a static binding; the package's management roles kept.
groups() {
  cat <<EOF
[switch]
name = "systemd-test"

[[port_group]]
name = "web"
vlan = 10
dhcp_snooping = {}
EOF
  for extra in "$@"; do
    case "$extra" in
      lab) printf '\n[[port_group]]\nname = "lab"\nvlan = 20\nstorm_control = { broadcast_pps = 200 }\n' ;;
      db) printf '\n[[port_group]]\nname = "db"\nvlan = 30\n' ;;
    esac
  done
}
# Guest b is on AF_XDP: the unit's CAP_BPF, CAP_PERFMON, CAP_IPC_LOCK, memlock and
# address families are what an AF_XDP port needs (a fallback fails the test).
port() {
  local backend=af_packet
  [ "$1" = b ] && backend=af_xdp
  printf '\n[[host.port]]\nname = "%s"\ninterface = "pc%s"\nport_group = "%s"\nmac = "%s"\nbackend = "%s"\n' \
    "$1" "$1" "$2" "$(mac_of "$1")" "$backend"
}
host_tail() {
  cat <<EOF

[[host.port]]
name = "vm1"
interface = "tapvm1"
port_group = "web"
mac = "52:54:00:00:00:01"
tap = true

[[host.static_binding]]
mac = "$(mac_of a)"
ip = "198.18.10.1"
port = "a"

[host.management.roles]
auditor = { groups = ["portcullis"] }
EOF
}
{ groups; port a web; port b web; host_tail; } >"$work/switch1.toml"
{ groups lab; port a web; port b web; port c lab; host_tail; } >"$work/switch2.toml"
{ groups lab db; port a web; port b web; port c db; host_tail; } >"$work/applied.toml"
put() { in_ct sh -c "cat > '$2'" <"$1"; }
put "$work/switch1.toml" /etc/portcullis/switch.toml
in_ct portcullis validate /etc/portcullis/switch.toml >/dev/null || fail "our switch.toml does not validate"

# 3. Start: Type=notify, so `systemctl start` returns once READY=1 was sent, and the
# daemon sends it once every port is open and the API serves.
in_ct systemctl start portcullis.service || fail "systemctl start: $(in_ct systemctl status --no-pager -l portcullis.service 2>&1)"
[ "$(in_ct systemctl is-active portcullis.service)" = active ] || fail "not active after start"
[ "$(prop SubState)" = running ] || fail "SubState $(prop SubState)"
[ "$(prop Type)" = notify ] || fail "Type $(prop Type)"
[ "$(prop NRestarts)" = 0 ] || fail "NRestarts $(prop NRestarts) after start"
[ -n "$(prop ActiveEnterTimestamp)" ] || fail "no ActiveEnterTimestamp"
pid1=$(prop MainPID)
[ "$pid1" -gt 0 ] || fail "no MainPID"
# The API served when start returned (READY=1 came after it): no retry here.
ports=$(in_ct portcullis show ports --json) || fail "the API does not answer right after start"
for p in a b vm1; do
  jq -e --arg p "$p" '.. | objects | select(.name? == $p and has("interface"))' <<<"$ports" >/dev/null ||
    fail "port $p not running: $ports"
done
[ "$(jq -r '.. | objects | select(.name? == "b" and has("backend")) | .backend' <<<"$ports")" = af_xdp ] ||
  fail "port b is not on AF_XDP under the unit: $(journal | grep -i 'xdp' | tail -3)"
in_ct ip -d link show tapvm1 | grep -q 'tun type tap' || fail "the switch did not create TAP tapvm1"
in_ct test -S /run/portcullis/portcullis.sock || fail "no control socket"
[ "$(in_ct stat -c '%a %G' /run/portcullis/portcullis.sock)" = "660 portcullis" ] ||
  fail "the socket is $(in_ct stat -c '%a %G' /run/portcullis/portcullis.sock), not 660 portcullis"
journal_has 'portcullis is switching' || fail "the daemon's log is not in the journal: $(journal)"
if journal | grep -E '^[[:space:]]*[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?' >/dev/null; then
  fail "timestamps doubled in the journal: $(journal | head -5)"
fi
if journal | grep -q 'cannot notify'; then fail "the daemon could not notify systemd"; fi
say "started: active (running) at $(prop ActiveEnterTimestamp), main PID $pid1, NRestarts 0; journal lines carry the journal's time only; port b on AF_XDP"
say "systemd-analyze security: $(in_ct systemd-analyze security --no-pager portcullis.service | tail -1)"

# Guests reach each other through the switch (the first frames learn the MACs).
in_guest ga ping -n -c 3 -i 0.2 -W 1 198.18.10.2 >/dev/null || fail "a cannot ping b through the switch"

# 4. Reload: the file gains group lab and port c; a 100/s ping a → b across it
# loses nothing; the main PID stays.
put "$work/switch2.toml" /etc/portcullis/switch.toml
in_guest ga ping -n -q -i 0.01 -c 300 -W 1 198.18.10.2 >"$work/ping-reload.txt" 2>&1 &
pinger=$!
sleep 1
in_ct systemctl reload portcullis.service || fail "systemctl reload"
wait "$pinger" || fail "ping across the reload: $(cat "$work/ping-reload.txt")"
grep -q ' 300 received, 0% packet loss' "$work/ping-reload.txt" ||
  fail "the reload was not hitless: $(grep -E 'transmitted|loss' "$work/ping-reload.txt")"
[ "$(prop MainPID)" = "$pid1" ] || fail "reload changed the main PID ($pid1 → $(prop MainPID))"
[ "$(in_ct systemctl is-active portcullis.service)" = active ] || fail "not active after reload"
c_group() { in_ct portcullis show ports --json | jq -r '.. | objects | select(.name? == "c" and has("port_group")) | .port_group'; }
[ "$(c_group)" = lab ] || fail "the reload did not apply the file: port c is in '$(c_group)'"
in_ct portcullis profile export | grep -q '^name = "lab"' || fail "the running profile lacks group lab"
journal_has 'reload (SIGHUP): the configuration files applied' || fail "no reload in the journal"
in_guest ga ping -n -c 2 -i 0.2 -W 1 198.18.10.3 >/dev/null &&
  fail "a (VLAN 10) reaches c (VLAN 20)"
say "reloaded: port c in group lab, 300 pings at 100/s across the reload, 0 lost, main PID $pid1"

# A file that does not validate: the reload is refused, nothing changes.
in_ct sh -c 'cp /etc/portcullis/switch.toml /root/good.toml; echo "[[port_group]]" >> /etc/portcullis/switch.toml'
in_ct systemctl reload portcullis.service || fail "systemctl reload (bad file)"
journal_has 'reload (SIGHUP) refused; nothing changed' || fail "a bad file was not refused: $(journal | tail -5)"
[ "$(c_group)" = lab ] || fail "a refused reload changed the switch"
[ "$(prop MainPID)" = "$pid1" ] && [ "$(in_ct systemctl is-active portcullis.service)" = active ] ||
  fail "a refused reload stopped the switch"
in_ct cp /root/good.toml /etc/portcullis/switch.toml
say "a file that does not validate: reload refused, nothing changed"

# 5. Through the API: an apply (c moves to a new group db), a runtime port on a TAP
# it creates, an API binding. Then restart.
put "$work/applied.toml" /root/applied.toml
in_ct portcullis apply /root/applied.toml >/dev/null || fail "portcullis apply"
[ "$(c_group)" = db ] || fail "the apply did not move c"
in_ct portcullis port add rt1 --interface taprt1 --group web --mac 52:54:00:00:00:02 --create-tap \
  --owner domain=systemd-test >/dev/null || fail "portcullis port add"
in_ct portcullis binding add --mac 52:54:00:00:00:02 --ip 198.18.10.20 --vlan 10 --port rt1 >/dev/null ||
  fail "portcullis binding add"
# Extra daemon options come from /etc/default/portcullis (a cluster member's
# --cluster …, docs/cluster.md): here --log-format json, seen in the journal.
in_ct sh -c 'echo "PORTCULLIS_DAEMON_ARGS=\"--log-format json\"" > /etc/default/portcullis'
in_ct systemctl restart portcullis.service || fail "systemctl restart: $(in_ct systemctl status --no-pager -l portcullis.service 2>&1)"
pid2=$(prop MainPID)
journal_has '"message":"portcullis is switching"' ||
  fail "PORTCULLIS_DAEMON_ARGS in /etc/default/portcullis did not reach the daemon: $(journal | tail -3)"
in_ct rm /etc/default/portcullis
[ "$(in_ct systemctl is-active portcullis.service)" = active ] || fail "not active after restart"
[ "$pid2" != "$pid1" ] || fail "restart kept main PID $pid1"
[ "$(prop NRestarts)" = 0 ] || fail "NRestarts $(prop NRestarts): the daemon failed and was restarted"
journal_has 'starting from the saved running configuration' || fail "not started from the running configuration"
[ "$(c_group)" = db ] || fail "restart lost the applied configuration: port c in '$(c_group)'"
rt=$(in_ct portcullis show ports --json | jq -c '.. | objects | select(.name? == "rt1" and has("interface"))')
[ "$(jq -r .interface <<<"$rt")" = taprt1 ] && [ "$(jq -r .runtime <<<"$rt")" = true ] ||
  fail "restart lost the runtime port: $rt"
for tap in tapvm1 taprt1; do
  in_ct ip -d link show "$tap" | grep -q 'tun type tap' || fail "TAP $tap is gone after restart"
done
vm1=$(in_ct portcullis show ports --json | jq -r '.. | objects | select(.name? == "vm1" and has("interface")) | "\(.interface) \(.state)"')
case "$vm1" in
  "tapvm1 no-interface" | "tapvm1 ") fail "port vm1 is not on its TAP after restart: $vm1" ;;
  tapvm1*) ;;
  *) fail "port vm1 after restart: $vm1" ;;
esac
bindings=$(in_ct portcullis show bindings --json)
jq -e '.bindings[] | select(.ip == "198.18.10.20" and .port == "rt1")' <<<"$bindings" >/dev/null ||
  fail "restart lost the API binding: $bindings"
jq -e '.bindings[] | select(.ip == "198.18.10.1" and .port == "a")' <<<"$bindings" >/dev/null ||
  fail "restart lost the static binding: $bindings"
in_guest ga ping -n -c 3 -i 0.2 -W 1 198.18.10.2 >/dev/null || fail "a cannot ping b after restart"
say "restarted: main PID $pid1 → $pid2, NRestarts 0; c still in db (the applied configuration), runtime port rt1 on taprt1, TAPs tapvm1 and taprt1 kept, API and static bindings kept"

# Upgrade (docs/install.md): the package installed over itself. dpkg runs the
# postinst as for an upgrade (`configure OLD-VERSION`): it restarts the running
# switch, which comes back as it was; the edited conffile stays without a question.
out=$(in_ct dpkg -i --force-confnew /mnt/portcullis-test/portcullis.deb 2>&1) || fail "dpkg -i (upgrade): $out"
pid3=$(prop MainPID)
[ "$(in_ct systemctl is-active portcullis.service)" = active ] || fail "not active after the upgrade"
[ "$pid3" != "$pid2" ] || fail "the upgrade did not restart the switch"
in_ct grep -q 'name = "lab"' /etc/portcullis/switch.toml || fail "the upgrade replaced the edited switch.toml"
[ "$(c_group)" = db ] || fail "the upgrade lost the applied configuration"
in_ct portcullis show bindings --json | jq -e '.bindings[] | select(.ip == "198.18.10.20" and .port == "rt1")' >/dev/null ||
  fail "the upgrade lost the API binding"
say "upgraded (reinstalled): restarted (main PID $pid2 → $pid3), the edited switch.toml, the applied configuration and the bindings kept"

# 6. Remove, then purge (docs/install.md, "Uninstall").
in_ct dpkg --remove portcullis >/dev/null 2>&1 || fail "dpkg --remove"
if in_ct systemctl is-active --quiet portcullis.service; then fail "still running after remove"; fi
in_ct test ! -e /usr/bin/portcullis || fail "remove left the binary"
in_ct test -f /etc/portcullis/switch.toml || fail "remove took the configuration"
in_ct test -f /var/lib/portcullis/running-config.json || fail "remove took the state"
in_ct test ! -e /run/portcullis || fail "remove left /run/portcullis"
in_ct dpkg --purge portcullis >/dev/null 2>&1 || fail "dpkg --purge"
in_ct test ! -e /etc/portcullis || fail "purge left /etc/portcullis: $(in_ct ls -la /etc/portcullis)"
in_ct test ! -e /var/lib/portcullis || fail "purge left /var/lib/portcullis"
if in_ct getent group portcullis >/dev/null; then fail "purge left the group"; fi
in_ct test ! -e /lib/systemd/system/portcullis.service || fail "purge left the unit"
in_ct ip link show tapvm1 >/dev/null 2>&1 || fail "the TAPs should persist (docs/install.md)"
say "removed: stopped, binary gone, configuration and state kept; purged: /etc/portcullis, /var/lib/portcullis and the group gone, TAPs kept"
