#!/usr/bin/env bash
# bench/overlay.sh — guest-to-guest traffic between two hosts over a VXLAN overlay:
# Portcullis's overlay against Linux's own (a bridge and a kernel vxlan device on
# each host), on the same lab, in one run.
#
# The lab: namespaces h1 and h2 are the hosts, joined by a veth pair (the underlay,
# 198.18.100.1–2, MTU 1600 so that 1500-byte guest frames fit with VXLAN's 50 bytes);
# g1 and g2 are the guests, each cabled by a veth pair into its host (198.18.10.1–2,
# VLAN 10 = VNI 10010). One after the other, each overlay joins the guests:
#   kernel      br0 + vxlan vx0 (id 10010, dstport 4789, nolearning, a static FDB
#               entry for the other guest and for broadcast) in each host: the baseline
#   portcullis  target/release/portcullis daemon in each host, [overlay] with a
#               static peer (the other host and its guest's MAC), guest port on
#               AF_PACKET with its default offloads
# and measures TCP with iperf3 (the guests' default offloads on: TSO/GSO super-frames
# reach the switch) and 64-byte UDP packets per second delivered (iperf3 -u, 18-byte
# payload, unlimited rate; the receiver's count less its losses). Prints one table
# (Markdown) with the medians and the ratios to the kernel, and the issue's goals.
#
# Owns: the namespaces ovb<PID>-* (removed on exit with everything in them) and the
# processes it starts (ended by PID). Touches nothing else.
#
# Usage (root; not part of CI):
#   cargo build --release -p portcullis && sudo bench/overlay.sh
# Environment (optional): OVERLAY_RUNS=3, OVERLAY_SECS=5, PORTCULLIS=target/release/portcullis
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "bench/overlay.sh: $*" >&2
  exit 1
}
say() { echo "[$(date +%T)] $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces): run sudo bench/overlay.sh"
RUNS=${OVERLAY_RUNS:-3}
SECS=${OVERLAY_SECS:-5}
PORTCULLIS=${PORTCULLIS:-$PWD/target/release/portcullis}
[[ $RUNS =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ ]] || die "OVERLAY_RUNS and OVERLAY_SECS must be whole numbers ≥ 1"
[ -x "$PORTCULLIS" ] || die "$PORTCULLIS missing: cargo build --release -p portcullis"
for t in iperf3:iperf3 bridge:iproute2 python3:python3; do
  command -v "${t%%:*}" >/dev/null || die "${t%%:*} missing (apt-get install ${t#*:})"
done

TAG=ovb$$
H1=$TAG-h1 H2=$TAG-h2 G1=$TAG-g1 G2=$TAG-g2
MAC1=02:4f:56:00:00:01 MAC2=02:4f:56:00:00:02
WORK=$(mktemp -d /tmp/overlay-bench.XXXXXX)
STARTED=()

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[i]}"; done
  for ns in "$G1" "$G2" "$H1" "$H2"; do ip netns del "$ns" 2>/dev/null; done
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

# ---- the lab -------------------------------------------------------------------------
for ns in "$H1" "$H2" "$G1" "$G2"; do
  ip netns add "$ns"
  in_ns "$ns" ip link set lo up
  in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n "$H1" link add eth0 type veth peer name eth0 netns "$H2"
for i in 1 2; do
  h=$TAG-h$i
  ip -n "$h" link set eth0 mtu 1600 up
  ip -n "$h" addr add 198.18.100.$i/24 dev eth0
done
ip -n "$G1" link add eth0 address $MAC1 type veth peer name g1p netns "$H1"
ip -n "$G2" link add eth0 address $MAC2 type veth peer name g2p netns "$H2"
for i in 1 2; do
  g=$TAG-g$i
  ip -n "$g" link set eth0 up
  ip -n "$g" addr add 198.18.10.$i/24 dev eth0
  ip -n "$TAG-h$i" link set g${i}p up
done

# ---- the overlays ------------------------------------------------------------------------
kernel_up() {
  local i other mac
  for i in 1 2; do
    other=$((3 - i))
    mac=$([ $i = 1 ] && echo $MAC2 || echo $MAC1)
    h=$TAG-h$i
    ip -n "$h" link add br0 type bridge forward_delay 0
    ip -n "$h" link add vx0 type vxlan id 10010 dstport 4789 local 198.18.100.$i dev eth0 nolearning
    in_ns "$h" bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.100.$other
    ip -n "$h" link set vx0 master br0 up
    ip -n "$h" link set g${i}p master br0
    ip -n "$h" link set br0 up
    in_ns "$h" bridge fdb add $mac dev vx0 dst 198.18.100.$other master static 2>/dev/null ||
      in_ns "$h" bridge fdb add $mac dev vx0 dst 198.18.100.$other
  done
}
kernel_down() {
  local i
  for i in 1 2; do
    ip -n "$TAG-h$i" link del br0
    ip -n "$TAG-h$i" link del vx0
  done
}

portcullis_up() {
  local i other mac
  for i in 1 2; do
    other=$((3 - i))
    mac=$([ $i = 1 ] && echo $MAC2 || echo $MAC1)
    own=$([ $i = 1 ] && echo $MAC1 || echo $MAC2)
    cat >"$WORK/h$i.toml" <<EOF
[switch]
name = "bench"

[[port_group]]
name = "web"
vlan = 10

[overlay]
vni = { 10 = 10010 }

[host.overlay]
local_ip = "198.18.100.$i"
interface = "eth0"
peers = [{ address = "198.18.100.$other", macs = [{ vlan = 10, mac = "$mac" }] }]

[[host.port]]
name = "g$i"
interface = "g${i}p"
port_group = "web"
mac = "$own"
EOF
    # Started by `ip netns exec` directly (it execs the daemon), not through a shell
    # function: `$!` must be the daemon's PID, which cleanup ends.
    ip netns exec "$TAG-h$i" "$PORTCULLIS" daemon --config "$WORK/h$i.toml" --socket "$WORK/h$i.sock" \
      --state-dir "$WORK/h$i-state" >"$WORK/h$i.log" 2>&1 &
    STARTED+=($!)
  done
  for i in 1 2; do
    for _ in $(seq 100); do
      [ -S "$WORK/h$i.sock" ] && break
      sleep 0.1
    done
    [ -S "$WORK/h$i.sock" ] || die "daemon h$i did not start: $(cat "$WORK/h$i.log")"
  done
  for p in "${STARTED[@]}"; do
    grep -q "portcullis" "/proc/$p/cmdline" 2>/dev/null || die "PID $p is not the daemon started"
  done
}
portcullis_down() {
  local p
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  STARTED=()
}

# ---- measurements ----------------------------------------------------------------------
tcp_mbps() {
  ip netns exec "$G2" iperf3 -s -1 -B 198.18.10.2 >/dev/null 2>&1 &
  local s=$!
  sleep 0.3
  in_ns "$G1" iperf3 -c 198.18.10.2 -t "$SECS" -O 1 -J >"$WORK/tcp.json" || true
  wait $s 2>/dev/null || true
  python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$WORK/tcp.json"
}
udp_kpps() {
  ip netns exec "$G2" iperf3 -s -1 -B 198.18.10.2 -J >"$WORK/udp-server.json" 2>/dev/null &
  local s=$!
  sleep 0.3
  in_ns "$G1" iperf3 -c 198.18.10.2 -u -b 0 -l 18 -t "$SECS" >/dev/null 2>&1 || true
  wait $s 2>/dev/null || true
  python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]["sum"]
print("%.1f" % ((e["packets"] - e["lost_packets"]) / e["seconds"] / 1e3))' "$WORK/udp-server.json"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A TCP UDP
for overlay in kernel portcullis; do
  say "$overlay: up"
  "${overlay}_up"
  for _ in $(seq 50); do
    in_ns "$G1" ping -c 1 -W 0.2 198.18.10.2 >/dev/null 2>&1 && break
  done
  in_ns "$G1" ping -c 3 -W 1 198.18.10.2 >/dev/null || die "$overlay: the guests do not reach each other"
  tcp=() udp=()
  for r in $(seq "$RUNS"); do
    tcp+=("$(tcp_mbps)")
    udp+=("$(udp_kpps)")
    say "$overlay run $r: TCP ${tcp[-1]} Mbit/s, UDP ${udp[-1]} kpps"
  done
  TCP[$overlay]=$(printf '%s\n' "${tcp[@]}" | median)
  UDP[$overlay]=$(printf '%s\n' "${udp[@]}" | median)
  "${overlay}_down"
done

ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2f' % (a / b) if b else 'n/a')" "$1" "$2"; }
echo
echo "| overlay | TCP Mbit/s (median of $RUNS) | ×kernel | UDP 64 B kpps | ×kernel |"
echo "|---|---:|---:|---:|---:|"
for o in kernel portcullis; do
  echo "| $o | ${TCP[$o]} | $(ratio "${TCP[$o]}" "${TCP[kernel]}") | ${UDP[$o]} | $(ratio "${UDP[$o]}" "${UDP[kernel]}") |"
done
echo
echo "goals: TCP ≥ 0.80× the kernel's ($(ratio "${TCP[portcullis]}" "${TCP[kernel]}")), 64-byte UDP ≥ 1.00× ($(ratio "${UDP[portcullis]}" "${UDP[kernel]}"))"
