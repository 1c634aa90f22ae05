#!/usr/bin/env bash
# bench/vhost_user.sh — issue 20: a QEMU guest on a vhost-user port against the same
# guest on a TAP port, measured by what the switch spends per packet.
#
# The lab: namespace sw holds the Portcullis daemon (target/release/portcullis) and
# QEMU; namespace g1 is a veth guest (198.18.20.1) cabled into sw (port "srv",
# AF_PACKET). The QEMU guest (198.18.20.2) is a Debian kernel and a busybox
# initramfs this script builds, with iperf3 (the host's, with the shared libraries
# it needs) inside, booted under TCG (QEMU 10, memfd guest memory shared, one
# vCPU). One after the other, with the same guest and the same switch config
# otherwise, its virtio-net NIC is on
#   tap    the switch's TAP port (`tap = true`; AF_PACKET on the TAP) and QEMU's
#          `-netdev tap,vhost=off,vnet_hdr=on`
#   vhost  a vhost-user port (`vhost_user = { socket, mode = "server" }`)
# and, for each, measures with iperf3 (client in g1, server in the guest):
#   udp-out  64-byte frames (18-byte UDP payload) from the guest (iperf3 -R)
#   udp-in   64-byte frames to the guest (unlimited rate from the veth guest)
#   tcp-out  TCP from the guest (-R), the guest's offloads on (TSO super-frames)
#   tcp-in   TCP to the guest
# TCG makes the guest slow, so the figure that matters is the switch's: its CPU
# (utime+stime of the whole daemon from /proc/PID/stat over the measured window)
# divided by the frames it took in from the sending port (the port counters, GET
# /v1/ports/NAME): µs per frame, and frames per switch-CPU-second ("pps per switch
# core"). The idle CPU of the daemon (nothing sent) is measured too. Prints one
# Markdown table with the medians and the vhost/TAP ratios of the same run.
#
# Owns: the namespaces vub<PID>-* (removed on exit with everything in them, the TAP
# included), the processes it starts (ended by PID) and a scratch directory.
#
# Usage (root; not part of CI):
#   cargo build --release -p portcullis && sudo bench/vhost_user.sh
# Environment (optional): VU_RUNS=3, VU_SECS=10, PORTCULLIS=target/release/portcullis,
#   VU_TESTS="udp-out udp-in tcp-out tcp-in" (a subset to run),
#   VU_STRACE=1 (attach `strace -c -f` to the daemon over each measured window and
#   print its summary to stderr: where the switch's CPU goes, by system call; it
#   slows the daemon, so the table of such a run is not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "bench/vhost_user.sh: $*" >&2
  exit 1
}
say() { echo "[$(date +%T)] $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces): run sudo bench/vhost_user.sh"
RUNS=${VU_RUNS:-3}
SECS=${VU_SECS:-10}
PORTCULLIS=${PORTCULLIS:-$PWD/target/release/portcullis}
[[ $RUNS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ ]] || die "VU_RUNS and VU_SECS must be whole numbers ≥ 1"
[ -x "$PORTCULLIS" ] || die "$PORTCULLIS missing: cargo build --release -p portcullis"
for t in iperf3:iperf3 qemu-system-x86_64:qemu-system-x86 cpio:cpio curl:curl python3:python3 busybox:busybox-static; do
  command -v "${t%%:*}" >/dev/null || die "${t%%:*} missing (apt-get install ${t#*:})"
done

TAG=vub$$
SW=$TAG-sw G1=$TAG-g1
VM_MAC=52:54:00:20:0b:02 SRV_MAC=02:56:42:00:00:01
SRV_IP=198.18.20.1 VM_IP=198.18.20.2
TAP=$TAG-tap
WORK=$(mktemp -d /tmp/vhost-bench.XXXXXX)
STARTED=()
HZ=$(getconf CLK_TCK)

alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
forget_pid() {
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}
# Ends one process this script started: TERM, then KILL after 3 s. Never by name.
stop_pid() {
  local pid=$1 i
  forget_pid "$pid"
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do
    alive "$pid" || break
    sleep 0.1
  done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[i]}"; done
  for ns in "$G1" "$SW"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# ---- the guest image -------------------------------------------------------------------
# The kernel linux-image-amd64 depends on (booted as the bzImage), its virtio-net
# modules, busybox-static, and iperf3 with the libraries ldd names.
KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | tr ',|' '\n\n' |
  sed -n 's/^ *linux-image-\([^ ]*\).*/\1/p' | head -1)
[ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] || die "no kernel: apt-get install linux-image-amd64"
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib/modules,lib64,proc,sys,dev,etc,tmp,run}
cp /bin/busybox "$ROOT/bin/busybox"
file -L "$ROOT/bin/busybox" 2>/dev/null | grep -q 'statically linked' ||
  ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || die "/bin/busybox is not static (apt-get install busybox-static)"
for m in $MODULES; do
  f=$(find "/lib/modules/$KVER/kernel" -name "$m.ko" -print -quit)
  [ -n "$f" ] || die "module $m.ko of $KVER not found"
  cp "$f" "$ROOT/lib/modules/"
done
cp "$(command -v iperf3)" "$ROOT/bin/iperf3"
for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
cat >"$ROOT/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODULES; do insmod /lib/modules/\$m.ko || echo "VUB-ERROR insmod \$m" > /dev/ttyS0; done
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
ip link set lo up
ip link set eth0 up
ip addr add $VM_IP/24 dev eth0
iperf3 -s -D || echo "VUB-ERROR iperf3" > /dev/ttyS0
echo VUB-READY > /dev/ttyS0
while true; do sleep 3600; done
EOF
chmod 755 "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) >"$WORK/initrd.img"
say "guest image: kernel $KVER, initramfs $(du -h "$WORK/initrd.img" | cut -f1)"

# ---- the lab -------------------------------------------------------------------------
for ns in "$SW" "$G1"; do
  ip netns add "$ns"
  in_ns "$ns" ip link set lo up
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n "$G1" link add eth0 address $SRV_MAC type veth peer name srvp netns "$SW"
ip -n "$G1" link set eth0 up
ip -n "$G1" addr add $SRV_IP/24 dev eth0
ip -n "$SW" link set srvp up

SOCK=$WORK/api.sock
VSOCK=$WORK/vm.vhost
write_config() { # MODE
  cat <<EOF
[switch]
name = "vubench"

[[port_group]]
name = "lan"
vlan = 10

[[host.port]]
name = "srv"
interface = "srvp"
port_group = "lan"
mac = "$SRV_MAC"
backend = "af_packet"

[[host.port]]
name = "vm"
port_group = "lan"
mac = "$VM_MAC"
EOF
  case $1 in
    tap) printf 'interface = "%s"\ntap = true\n' "$TAP" ;;
    vhost) printf 'vhost_user = { socket = "%s", mode = "server" }\n' "$VSOCK" ;;
  esac
}

DAEMON_PID="" QEMU_PID=""
up() { # MODE
  local mode=$1 cfg=$WORK/$1.toml net
  write_config "$mode" >"$cfg"
  ip netns exec "$SW" "$PORTCULLIS" validate "$cfg" >/dev/null || die "$mode: the config does not validate"
  rm -rf "$WORK/state" "$SOCK"
  # `ip netns exec` directly (not through in_ns): $! is then the daemon itself.
  ip netns exec "$SW" "$PORTCULLIS" daemon --config "$cfg" --socket "$SOCK" --state-dir "$WORK/state" \
    </dev/null >"$WORK/$mode.daemon.log" 2>&1 &
  DAEMON_PID=$!
  STARTED+=("$DAEMON_PID")
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && break
    sleep 0.1
  done
  [ -S "$SOCK" ] || die "$mode: the daemon did not start: $(cat "$WORK/$mode.daemon.log")"
  [ "$(readlink "/proc/$DAEMON_PID/exe")" = "$(readlink -f "$PORTCULLIS")" ] ||
    die "$mode: PID $DAEMON_PID is not the daemon: its CPU would not be the switch's"
  case $mode in
    tap) net=(-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off,vnet_hdr=on") ;;
    vhost) net=(-chardev "socket,id=c0,path=$VSOCK" -netdev "vhost-user,id=n0,chardev=c0") ;;
  esac
  : >"$WORK/console.log"
  ip netns exec "$SW" qemu-system-x86_64 -machine q35,accel=tcg,memory-backend=mem0 \
    -object memory-backend-memfd,id=mem0,size=256M,share=on -m 256M -smp 1 \
    -nodefaults -no-reboot -display none \
    -kernel "/boot/vmlinuz-$KVER" -initrd "$WORK/initrd.img" -append "console=ttyS0 panic=-1 quiet" \
    -serial "file:$WORK/console.log" "${net[@]}" \
    -device "virtio-net-pci,netdev=n0,mac=$VM_MAC,romfile=" \
    </dev/null >"$WORK/$mode.qemu.log" 2>&1 &
  QEMU_PID=$!
  STARTED+=("$QEMU_PID")
  for _ in $(seq 240); do
    grep -q VUB-READY "$WORK/console.log" 2>/dev/null && break
    alive "$QEMU_PID" || die "$mode: QEMU ended: $(cat "$WORK/$mode.qemu.log")"
    sleep 0.5
  done
  grep -q VUB-READY "$WORK/console.log" || die "$mode: the guest did not boot: $(cat "$WORK/console.log")"
  ! grep -q VUB-ERROR "$WORK/console.log" || die "$mode: the guest: $(grep VUB-ERROR "$WORK/console.log")"
  for _ in $(seq 30); do
    in_ns "$G1" ping -c 1 -W 1 $VM_IP >/dev/null 2>&1 && return 0
  done
  die "$mode: the veth guest does not reach the QEMU guest"
}
down() {
  stop_pid "$QEMU_PID"
  stop_pid "$DAEMON_PID"
  QEMU_PID="" DAEMON_PID=""
  ip -n "$SW" link del "$TAP" 2>/dev/null || true
}

# ---- measurements ----------------------------------------------------------------------
ticks() { sed 's/^.*) //' "/proc/$DAEMON_PID/stat" | awk '{ print $12 + $13 }'; }
# A port's counter (rx_frames, tx_frames).
counter() { # PORT KEY
  curl -sf --unix-socket "$SOCK" "http://portcullis/v1/ports/$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["counters"][sys.argv[1]])' "$2"
}
# The daemon's CPU ticks while nothing is sent, per second.
idle_pct() {
  local t0 t1
  t0=$(ticks)
  sleep 5
  t1=$(ticks)
  python3 -c "import sys; print('%.1f' % ((int(sys.argv[2]) - int(sys.argv[1])) / $HZ / 5 * 100))" "$t0" "$t1"
}
# Runs one iperf3 client in g1 and prints "FRAMES TICKS SECONDS RESULT": the frames
# the switch took in from the sending port, the daemon's CPU ticks and the wall time
# of the window, and iperf3's own figure (what the receiver got: kpps for UDP,
# Mbit/s for TCP).
measure() { # TEST
  local test=$1 port args t0 t1 f0 f1 w0 w1
  case $test in
    udp-out) port=vm args=(-u -b 0 -l 18 -R) ;;
    udp-in) port=srv args=(-u -b 0 -l 18) ;;
    tcp-out) port=vm args=(-R) ;;
    tcp-in) port=srv args=() ;;
  esac
  f0=$(counter $port rx_frames)
  t0=$(ticks)
  w0=$(date +%s%N)
  local tracer=
  if [ "${VU_STRACE:-0}" = 1 ]; then
    strace -c -f -o "$WORK/strace.$test" -p "$DAEMON_PID" 2>/dev/null &
    tracer=$!
    sleep 0.5
  fi
  in_ns "$G1" timeout $((SECS + 30)) iperf3 -c $VM_IP -t "$SECS" -J "${args[@]}" >"$WORK/iperf.json" 2>&1 || true
  if [ -n "$tracer" ]; then
    kill -INT "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
    {
      echo "strace -c -f of the daemon, $test:"
      head -n 20 "$WORK/strace.$test"
    } >&2
  fi
  w1=$(date +%s%N)
  t1=$(ticks)
  f1=$(counter $port rx_frames)
  python3 - "$WORK/iperf.json" "$((f1 - f0))" "$((t1 - t0))" "$(((w1 - w0) / 1000000))" <<'EOF'
import json, sys
try:
    end = json.load(open(sys.argv[1]))["end"]
    if "packets" in end.get("sum", {}):  # UDP: what the receiver got, kpps
        s = end["sum"]
        mbps = "%.1fkpps" % ((s["packets"] - s["lost_packets"]) / s["seconds"] / 1e3)
    else:  # TCP: the receiver's Mbit/s
        mbps = "%.0fMbit/s" % (end["sum_received"]["bits_per_second"] / 1e6)
except Exception:
    mbps = "n/a"
print(sys.argv[2], sys.argv[3], "%.3f" % (int(sys.argv[4]) / 1000), mbps)
EOF
}

TESTS=${VU_TESTS:-udp-out udp-in tcp-out tcp-in}
RES=$WORK/results
: >"$RES"
for mode in tap vhost; do
  say "$mode: boot"
  up "$mode"
  say "$mode: up (console: $(grep -c . "$WORK/console.log") lines)"
  backend=$(curl -sf --unix-socket "$SOCK" http://portcullis/v1/ports/vm | python3 -c 'import json, sys; print(json.load(sys.stdin).get("backend"))')
  idle=$(idle_pct)
  say "$mode: port backend $backend, daemon idle CPU $idle %"
  echo "$mode idle $idle" >>"$RES"
  for r in $(seq "$RUNS"); do
    for t in $TESTS; do
      read -r frames tk secs mbps < <(measure "$t")
      echo "$mode $t $frames $tk $secs $mbps" >>"$RES"
      say "$mode $t run $r: $frames frames, $tk CPU ticks in ${secs}s, iperf3 $mbps"
    done
  done
  for p in srv vm; do
    curl -sf --unix-socket "$SOCK" "http://portcullis/v1/ports/$p" >"$WORK/$mode.$p.json" || true
  done
  # Where the frames the guest could not take went: the vm port's non-zero counters.
  say "$mode: port vm after the runs: $(python3 -c '
import json, sys
def leaves(v, path=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, path + "." + k if path else k)
    elif isinstance(v, int) and not isinstance(v, bool) and v:
        yield "%s=%d" % (path, v)
p = json.load(open(sys.argv[1]))
print(" ".join(l for k in ("counters", "io") for l in leaves(p.get(k, {}), k)))' "$WORK/$mode.vm.json" 2>&1)"
  down
done

python3 - "$RES" "$HZ" "$RUNS" "$SECS" <<'EOF'
import statistics, sys
hz, runs, secs = int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows, idle = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[1] == "idle":
        idle[f[0]] = f[2]
        continue
    mode, test, frames, ticks, wall, mbps = f
    rows.setdefault((mode, test), []).append((int(frames), int(ticks), float(wall), mbps))

def fig(mode, test):
    rs = rows.get((mode, test), [])
    if not rs:
        return None
    us = [t / hz * 1e6 / fr if fr else float("inf") for fr, t, _, _ in rs]
    pps_core = [fr / (t / hz) if t else float("inf") for fr, t, _, _ in rs]
    pps = [fr / w for fr, _, w, _ in rs]
    cpu = [t / hz / w * 100 for _, t, w, _ in rs]
    unit = next((m.lstrip("0123456789.") for *_, m in rs if m != "n/a"), "")
    mb = [float(m[: len(m) - len(unit)]) for *_, m in rs if m != "n/a"]
    return dict(us=statistics.median(us), core=statistics.median(pps_core), pps=statistics.median(pps),
                cpu=statistics.median(cpu), mbps=statistics.median(mb) if mb else None, unit=unit)

print()
print(f"| test | port | frames/s through the switch | switch CPU % | switch µs/frame | frames/s per switch core | ×TAP | iperf3: the receiver got |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for test in ["udp-out", "udp-in", "tcp-out", "tcp-in"]:
    base = fig("tap", test)
    for mode in ["tap", "vhost"]:
        r = fig(mode, test)
        if r is None:
            continue
        ratio = "%.2f" % (r["core"] / base["core"]) if base and base["core"] else "n/a"
        mb = "%.1f %s" % (r["mbps"], r["unit"]) if r["mbps"] is not None else "n/a"
        name = "TAP" if mode == "tap" else "vhost-user"
        print(f"| {test} | {name} | {r['pps']:.0f} | {r['cpu']:.1f} | {r['us']:.2f} | {r['core']:.0f} | {ratio} | {mb} |")
print()
print(f"medians of {runs} runs of {secs} s; daemon CPU with nothing sent: TAP {idle.get('tap', '?')} %, vhost-user {idle.get('vhost', '?')} %")
for test in ["udp-out", "udp-in"]:
    t, v = fig("tap", test), fig("vhost", test)
    if t and v and t["core"]:
        print(f"goal (issue 20): vhost-user ≥ 1.5× TAP in 64-byte frames per second per switch core, {test}: {v['core'] / t['core']:.2f}×")
EOF
