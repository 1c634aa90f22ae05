#!/usr/bin/env bash
# bench/peers.sh — Portcullis against its peers on one veth lab, in one run.
#
# Builds a two-guest lab (network namespaces g1 and g2, each with eth0 cabled by a
# veth pair into a switch namespace; addresses in 198.18.0.0/15 only) and, one after
# the other on the same traffic, puts each switch between the guests:
#   linux-bridge   the kernel bridge (the baseline)
#   bridge-nft     the bridge + nftables bridge-family anti-spoofing: per-port
#                  source MAC and source IPv4 allow-lists (forged transmits + IPSG)
#   ovs-netdev     Open vSwitch, userspace datapath (datapath_type=netdev), ports of
#                  type system (AF_PACKET), daemons started by hand in a private dir
#   ovs-afxdp      the same datapath with ports of type afxdp (XDP program + AF_XDP
#                  socket per port; xdp-mode native, else generic: no zero copy on
#                  veth), one PMD thread busy-polling the switch core
#   portcullis     target/release/portcullis daemon, full security profile, AF_PACKET
#   portcullis-afxdp  the same with backend = "af_xdp" on both ports; its row reads
#                  "n/a (not implemented)" when the binary has no AF_XDP backend, and
#                  "failed: ..." when the daemon fell back to AF_PACKET
# and measures TCP with iperf3 (offloads on; tx offload off on both guests), 64-byte
# UDP packets per second delivered (trafgen, pinned), and the CPU the switch and the
# generator use (for ovs-afxdp also the share of its PMD's cycles spent processing
# packets, since a busy-polling thread always uses its whole core). Prints one table
# (Markdown) with the medians and the ratios to the Linux bridge, then the issue's
# targets (ratios to the bridge, OVS netdev and OVS with AF_XDP ports), and keeps raw
# results and logs in $PEERS_OUT.
#
# Owns: the lab it creates (namespaces pcb<PID>-*, removed on exit, with everything
# in them), the processes it starts (ended by PID on exit) and the XDP programs on
# its switch-side veth ends (detached after each switch and on exit). Touches nothing else:
# no system service, no host interface, no address outside the namespaces.
#
# Usage (root; not part of CI):
#   cargo build --release -p portcullis && sudo bench/peers.sh
# Environment (all optional):
#   PEERS_RUNS=3            runs of each measurement; the table shows the median
#   PEERS_TCP_SECS=5        iperf3 duration per run (after 1 s omitted)
#   PEERS_UDP_SECS=3        UDP measurement window (trafgen runs 1 s before, ~1 s after)
#   PEERS_GEN_CPU=1         the core trafgen is pinned to
#   PEERS_SWITCH_CPU=0      the core the userspace switches are pinned to
#   PEERS_SWITCHES="linux-bridge bridge-nft ovs-netdev ovs-afxdp portcullis portcullis-afxdp"
#   PEERS_PERF=1            one more UDP run per switch under `perf record -g`
#                           (report in $PEERS_OUT/perf-<switch>.txt; not in the table)
#   PEERS_MAX_LOAD=1.0      first wait (up to PEERS_LOAD_WAIT_SECS=1800) for the
#                           1-minute load average to drop below this
#   PEERS_OUT=target/bench-peers/<date>
#   PORTCULLIS=target/release/portcullis
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "bench/peers.sh: $*" >&2
  exit 1
}
say() { echo "[$(date +%T)] $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, nftables, Open vSwitch): run sudo bench/peers.sh"

RUNS=${PEERS_RUNS:-3}
TCP_SECS=${PEERS_TCP_SECS:-5}
UDP_SECS=${PEERS_UDP_SECS:-3}
GEN_CPU=${PEERS_GEN_CPU:-1}
SWITCH_CPU=${PEERS_SWITCH_CPU:-0}
SWITCHES=${PEERS_SWITCHES:-linux-bridge bridge-nft ovs-netdev ovs-afxdp portcullis portcullis-afxdp}
PERF=${PEERS_PERF:-0}
PORTCULLIS=${PORTCULLIS:-$PWD/target/release/portcullis}
OUT=${PEERS_OUT:-$PWD/target/bench-peers/$(date +%Y%m%d-%H%M%S)}
HELPER=$PWD/bench/peers_report.py

for v in RUNS TCP_SECS UDP_SECS GEN_CPU SWITCH_CPU; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "PEERS_$v must be a whole number, not '${!v}'"
done
if [ "$RUNS" -lt 1 ] || [ "$TCP_SECS" -lt 1 ] || [ "$UDP_SECS" -lt 1 ]; then
  die "runs and durations must be at least 1"
fi
ncpu=$(nproc)
if [ "$GEN_CPU" -ge "$ncpu" ] || [ "$SWITCH_CPU" -ge "$ncpu" ]; then
  die "PEERS_GEN_CPU and PEERS_SWITCH_CPU must be below nproc ($ncpu)"
fi
for s in $SWITCHES; do
  case $s in
    linux-bridge | bridge-nft | ovs-netdev | ovs-afxdp | portcullis | portcullis-afxdp) ;;
    *) die "unknown switch '$s' in PEERS_SWITCHES" ;;
  esac
done

# ---- tools (Debian packages) --------------------------------------------------------
# command:package. openvswitch-switch's own service is never used: on a host with
# systemd, installing the package starts it; this script runs private daemons anyway.
tools=(iperf3:iperf3 trafgen:netsniff-ng ovs-vswitchd:openvswitch-switch ovsdb-server:openvswitch-switch
  ovs-vsctl:openvswitch-switch ovs-appctl:openvswitch-common nft:nftables ethtool:ethtool ip:iproute2 ss:iproute2 ping:iputils-ping
  python3:python3 taskset:util-linux timeout:coreutils perf:linux-perf)
missing=()
for t in "${tools[@]}"; do
  cmd=${t%%:*} pkg=${t#*:}
  [ "$cmd" = perf ] && [ "$PERF" != 1 ] && continue
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q || die "apt-get update failed"
  timeout 600 apt-get install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
fi
case " $SWITCHES " in
  *" portcullis "* | *" portcullis-afxdp "*)
    [ -x "$PORTCULLIS" ] || die "$PORTCULLIS missing: cargo build --release -p portcullis" ;;
esac

# ---- the machine must be quiet enough (optional) -------------------------------------
if [ -n "${PEERS_MAX_LOAD:-}" ]; then
  deadline=$((SECONDS + ${PEERS_LOAD_WAIT_SECS:-1800}))
  until awk -v max="$PEERS_MAX_LOAD" '{ exit !($1 < max) }' /proc/loadavg; do
    if [ $SECONDS -ge $deadline ]; then
      say "load still $(cut -d' ' -f1 /proc/loadavg) ≥ $PEERS_MAX_LOAD after waiting: running anyway"
      break
    fi
    sleep 15
  done
fi

# ---- lab state and cleanup ----------------------------------------------------------
TAG=pcb$$
G1=$TAG-g1 G2=$TAG-g2 SW=$TAG-sw
MAC1=02:50:43:00:00:01 MAC2=02:50:43:00:00:02
IP1=198.18.0.1 IP2=198.18.0.2
WORK=$(mktemp -d /tmp/peers.XXXXXX)
LOGS=$OUT/logs
RESULTS=$OUT/results.tsv
mkdir -p "$LOGS"
: >"$RESULTS"
STARTED=() # PIDs this script started, in order

alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Drops a PID from STARTED once it is ended, so that cleanup never signals a PID
# the kernel may have given to someone else since.
forget_pid() {
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}

# Ends one process this script started: TERM, then KILL after 3 s; reaps it if it is
# our child. Never by name.
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

# Detaches any XDP program (driver or generic mode) from the switch-side veth ends,
# so that no switch inherits one its predecessor left (ovs-vswitchd or a Portcullis
# daemon ended by KILL does not detach its own). Prints the links it found one on.
detach_xdp() {
  local p
  for p in pcbs1 pcbs2; do
    ip -n "$SW" link show dev "$p" 2>/dev/null | grep -qE '\bxdp(generic|drv|offload|multi)?\b' || continue
    echo "$p"
    ip -n "$SW" link set dev "$p" xdpgeneric off 2>/dev/null
    ip -n "$SW" link set dev "$p" xdpdrv off 2>/dev/null
  done
  return 0
}

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[i]}"; done
  detach_xdp >/dev/null
  for ns in "$G1" "$G2" "$SW"; do ip netns del "$ns" 2>/dev/null; done
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

# The direct children of a process (from /proc), one per line.
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed '/^$/d'; }

# utime+stime of a process (all its threads), in clock ticks; empty when it is gone.
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }

# softirq of the whole machine, in clock ticks.
softirq_ticks() { awk '$1 == "cpu" { print $8 }' /proc/stat; }

HZ=$(getconf CLK_TCK)
now_ns() { date +%s%N; }

record() { (IFS=$'\t'; echo "$*") >>"$RESULTS"; }

# The userspace switch's own counters so far, "TAKEN_IN<tab>TX_LOST": the frames it
# has taken in (what the generator offered minus what its receive path dropped
# before the switch saw them) and the frames it forwarded but could not send.
# Portcullis: rx_frames of g1; tx_ring_full + tx_too_big + tx_errors of g2.
# OVS: datapath lookups (hit + missed; its port RX counters are the kernel's
# interface counters, which also count frames it never read); TX_LOST unknown.
# Empty for the kernel's switches.
switch_counters() {
  case $1 in
    portcullis | portcullis-afxdp)
      PORTCULLIS_SOCKET=$PC_SOCKET timeout 5 "$PORTCULLIS" show ports --json 2>/dev/null |
        python3 "$HELPER" portcullis-io g1 g2 2>/dev/null || true ;;
    ovs-netdev | ovs-afxdp)
      timeout 5 ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" dpctl/show -s 2>/dev/null |
        awk '/lookups:/ { for (i = 1; i <= NF; i++) { split($i, kv, ":"); if (kv[1] == "hit" || kv[1] == "missed") n += kv[2] }
                          print n; exit }' || true ;;
  esac
}

# ---- the lab ------------------------------------------------------------------------
say "lab $TAG: namespaces $G1, $G2 (guests) and $SW (switch); results in $OUT"
ip netns add "$SW"
ip netns add "$G1"
ip netns add "$G2"
ip link add pcbs1 netns "$SW" type veth peer name eth0 netns "$G1"
ip link add pcbs2 netns "$SW" type veth peer name eth0 netns "$G2"
for ns in "$SW" "$G1" "$G2"; do
  ip -n "$ns" link set lo up
  # IPv4 only: no IPv6 autoconfiguration chatter in the measurements.
  in_ns "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
in_ns "$SW" sysctl -q -w net.ipv6.conf.pcbs1.disable_ipv6=1 net.ipv6.conf.pcbs2.disable_ipv6=1
in_ns "$G1" sysctl -q -w net.ipv6.conf.eth0.disable_ipv6=1
in_ns "$G2" sysctl -q -w net.ipv6.conf.eth0.disable_ipv6=1
ip -n "$G1" link set eth0 address $MAC1
ip -n "$G2" link set eth0 address $MAC2
ip -n "$G1" addr add $IP1/24 dev eth0
ip -n "$G2" addr add $IP2/24 dev eth0
for ns in "$G1" "$G2"; do
  ip -n "$ns" link set eth0 up
  # The UDP flood (to port 9) is counted on arrival by the veth and dropped at
  # ingress, before the IP stack: no ICMP unreachables back through the switch.
  in_ns "$ns" nft -f - <<'EOF'
table netdev pcb_sink {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy accept;
    udp dport 9 counter drop
  }
}
EOF
done
ip -n "$SW" link set pcbs1 up
ip -n "$SW" link set pcbs2 up

# 64-byte frames on the wire (60 bytes + FCS): Ethernet, IPv4 (checksum by trafgen),
# UDP, 18 bytes of zeros; from g1's own MAC and address to g2's, so that every
# switch forwards them, Portcullis's security stages included.
TRAFGEN_CONF=$WORK/udp64.trafgen
cat >"$TRAFGEN_CONF" <<EOF
{
  eth(da=$MAC2, sa=$MAC1, type=0x0800),
  ipv4(sa=$IP1, da=$IP2, ttl=64),
  udp(sp=4000, dp=9),
  fill(0x00, 18)
}
EOF

# ---- the switches -------------------------------------------------------------------
SWITCH_PID="" # the userspace switch's process, for CPU and perf

# up_* functions run in an `if` (where set -e is off): each step returns on failure.
bridge_up() {
  ip -n "$SW" link add br0 type bridge stp_state 0 || return 1
  ip -n "$SW" link set pcbs1 master br0 || return 1
  ip -n "$SW" link set pcbs2 master br0 || return 1
  ip -n "$SW" link set br0 up
}
bridge_down() { ip -n "$SW" link del br0 2>/dev/null || true; }

up_linux-bridge() { bridge_up; }
down_linux-bridge() { bridge_down; }

# Per-port allow-lists, the hand-made equivalent of forged-transmit + IP Source Guard
# (as libvirt's nwfilter clean-traffic or Proxmox's ipfilter build them): a frame
# from a guest port must carry the port's MAC; its ARP sender and its IPv4 source
# must be the port's; DHCP discovery from 0.0.0.0 is exempt.
up_bridge-nft() {
  bridge_up || return 1
  in_ns "$SW" nft -f - <<EOF
table bridge pcb_antispoof {
  set g1_macs { type ether_addr; elements = { $MAC1 } }
  set g1_ips { type ipv4_addr; elements = { $IP1 } }
  set g2_macs { type ether_addr; elements = { $MAC2 } }
  set g2_ips { type ipv4_addr; elements = { $IP2 } }
  chain prerouting {
    type filter hook prerouting priority -200; policy accept;
    iifname vmap { "pcbs1" : jump from_g1, "pcbs2" : jump from_g2 }
  }
  chain from_g1 {
    ether saddr != @g1_macs counter drop
    ether type arp arp saddr ether != @g1_macs counter drop
    ether type arp arp saddr ip != @g1_ips counter drop
    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
    ether type ip ip saddr != @g1_ips counter drop
  }
  chain from_g2 {
    ether saddr != @g2_macs counter drop
    ether type arp arp saddr ether != @g2_macs counter drop
    ether type arp arp saddr ip != @g2_ips counter drop
    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
    ether type ip ip saddr != @g2_ips counter drop
  }
}
EOF
}
down_bridge-nft() {
  in_ns "$SW" nft list table bridge pcb_antispoof >"$LOGS/bridge-nft-counters.txt" 2>&1 || true
  in_ns "$SW" nft delete table bridge pcb_antispoof 2>/dev/null || true
  bridge_down
}

OVS_DIR=$WORK/ovs
OVSDB_PID="" VSWITCHD_PID=""
vsctl() { timeout 20 ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=15 "$@"; }

wait_socket() { # PID SOCKET SECONDS
  local i
  for i in $(seq $(($3 * 10))); do
    [ -S "$2" ] && return 0
    alive "$1" || return 1
    sleep 0.1
  done
  return 1
}

ovsctl() { timeout 10 ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" "$@"; }

# Starts ovsdb-server and ovs-vswitchd (pinned to the switch core) in the switch
# namespace, with a fresh database, and adds bridge br0 of the userspace datapath.
ovs_start() { # NAME (of the row: names the logs)
  rm -rf "$OVS_DIR"
  mkdir -p "$OVS_DIR" || return 1
  # Everything in the private directory: never the system's /var/run/openvswitch.
  export OVS_RUNDIR=$OVS_DIR OVS_DBDIR=$OVS_DIR OVS_SYSCONFDIR=$OVS_DIR OVS_LOGDIR=$LOGS
  ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
  ip netns exec "$SW" ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
    --unixctl="$OVS_DIR/ovsdb-server.ctl" --no-chdir --log-file="$LOGS/$1-ovsdb-server.log" \
    </dev/null >/dev/null 2>&1 &
  OVSDB_PID=$!
  STARTED+=("$OVSDB_PID")
  wait_socket "$OVSDB_PID" "$OVS_DIR/db.sock" 10 || { echo "ovsdb-server did not start"; return 1; }
  vsctl --no-wait init || return 1
  ip netns exec "$SW" taskset -c "$SWITCH_CPU" ovs-vswitchd "unix:$OVS_DIR/db.sock" \
    --unixctl="$OVS_DIR/ovs-vswitchd.ctl" --no-chdir --log-file="$LOGS/$1-ovs-vswitchd.log" \
    </dev/null >/dev/null 2>&1 &
  VSWITCHD_PID=$!
  STARTED+=("$VSWITCHD_PID")
  SWITCH_PID=$VSWITCHD_PID
  wait_socket "$VSWITCHD_PID" "$OVS_DIR/ovs-vswitchd.ctl" 10 || { echo "ovs-vswitchd did not start"; return 1; }
  vsctl add-br br0 -- set bridge br0 datapath_type=netdev
}

# Stops what ovs_start started, after saving its datapath (and PMD) statistics.
ovs_stop() { # NAME
  if [ -n "$VSWITCHD_PID" ]; then
    {
      ovsctl dpctl/show -s
      ovsctl dpif-netdev/pmd-stats-show
      ovsctl dpif-netdev/pmd-rxq-show
      vsctl --columns=name,type,options,status,statistics,error list Interface
    } >"$LOGS/$1-dpctl.txt" 2>&1 || true
    stop_pid "$VSWITCHD_PID"
  fi
  [ -n "$OVSDB_PID" ] && stop_pid "$OVSDB_PID"
  ip -n "$SW" link del br0 2>/dev/null || true # the netdev datapath's local port (a TAP)
  unset OVS_RUNDIR OVS_DBDIR OVS_SYSCONFDIR OVS_LOGDIR
  OVSDB_PID="" VSWITCHD_PID=""
}

up_ovs-netdev() {
  ovs_start ovs-netdev || return 1
  vsctl add-port br0 pcbs1 -- set Interface pcbs1 type=system || return 1
  vsctl add-port br0 pcbs2 -- set Interface pcbs2 type=system || return 1
  vsctl show >"$LOGS/ovs-netdev-show.txt" 2>&1
}
down_ovs-netdev() { ovs_stop ovs-netdev; }

# Whether ports pcbs1 and pcbs2 of br0 opened as afxdp ports with an XDP program
# attached in MODE (native: "xdp" on the link, generic: "xdpgeneric").
ovs_afxdp_ports_ok() { # MODE
  local p err ofport want=xdp
  [ "$1" = generic ] && want=xdpgeneric
  for p in pcbs1 pcbs2; do
    err=$(vsctl get Interface "$p" error 2>&1) || { echo "$p: $err"; return 1; }
    [ "$err" = '[]' ] || [ -z "$err" ] || { echo "$p: $err"; return 1; }
    ofport=$(vsctl get Interface "$p" ofport 2>&1) || { echo "$p: $ofport"; return 1; }
    if ! [[ $ofport =~ ^[0-9]+$ ]] || [ "$ofport" -le 0 ]; then
      echo "$p: no OpenFlow port ($ofport)"
      return 1
    fi
    # One line: "... mtu 1500 xdp qdisc ..." (driver mode) or "... xdpgeneric ...".
    ip -n "$SW" -o link show dev "$p" | grep -qE "mtu [0-9]+ $want " ||
      { echo "$p: no $want program on the link: $(ip -n "$SW" -o link show dev "$p")"; return 1; }
  done
}

# OVS userspace datapath with the switch-side veth ends as type=afxdp ports: an XDP
# program on each redirects into an AF_XDP socket that one PMD thread busy-polls on
# the switch core (pmd-cpu-mask). One RX queue per port (a veth has one active), so
# the single PMD polls both and pmd-rxq-affinity/-isolate change nothing. Zero copy
# is not possible on veth: xdp-mode native (driver-mode XDP, copy) first, generic
# (skb-mode XDP) if native does not open.
OVS_XDP_MODE=""
up_ovs-afxdp() {
  local mode why
  OVS_XDP_MODE=""
  ovs_start ovs-afxdp || return 1
  vsctl get Open_vSwitch . iface_types | grep -qw afxdp ||
    { echo "this ovs-vswitchd has no afxdp port type (built without AF_XDP)"; return 1; }
  vsctl set Open_vSwitch . other_config:pmd-cpu-mask="$(printf '0x%x' $((1 << SWITCH_CPU)))" || return 1
  for mode in native generic; do
    why=""
    # add-port waits until ovs-vswitchd has reconfigured: the error column is current.
    if vsctl add-port br0 pcbs1 -- set Interface pcbs1 type=afxdp options:xdp-mode=$mode options:n_rxq=1 &&
      vsctl add-port br0 pcbs2 -- set Interface pcbs2 type=afxdp options:xdp-mode=$mode options:n_rxq=1 &&
      why=$(ovs_afxdp_ports_ok $mode); then
      OVS_XDP_MODE=$mode
      break
    fi
    echo "xdp-mode=$mode did not work: $why"
    record note ovs-afxdp "xdp-mode=$mode did not work: ${why:-add-port failed}"
    vsctl --if-exists del-port br0 pcbs1 -- --if-exists del-port br0 pcbs2
    detach_xdp
  done
  [ -n "$OVS_XDP_MODE" ] || { echo "afxdp ports did not open in native nor generic mode"; return 1; }
  record note ovs-afxdp "ports type=afxdp, xdp-mode=$OVS_XDP_MODE, n_rxq=1, one PMD thread on CPU $SWITCH_CPU (pmd-cpu-mask), busy-polling"
  {
    vsctl show
    ovsctl dpif-netdev/pmd-rxq-show
    ip -n "$SW" -d link show dev pcbs1
    ip -n "$SW" -d link show dev pcbs2
  } >"$LOGS/ovs-afxdp-show.txt" 2>&1
}
# ovs-vswitchd detaches its XDP programs when it ends by TERM; the main loop
# detaches (and reports) whatever is left after a KILL.
down_ovs-afxdp() { ovs_stop ovs-afxdp; }

# The share of its cycles OVS's PMD thread spent processing packets (not polling
# idle) since the last pmd-stats-clear, in %; empty without a PMD thread.
pmd_stats_clear() { ovsctl dpif-netdev/pmd-stats-clear >/dev/null 2>&1 || true; }
pmd_busy_pct() {
  ovsctl dpif-netdev/pmd-stats-show 2>/dev/null |
    awk '/^pmd thread/ { pmd = 1 } pmd && /processing cycles:/ { gsub(/[()%]/, "", $4); print $4; exit }' || true
}

PC_SOCKET=$WORK/portcullis.sock
PC_PID=""
# The full security profile on both guest ports: the three vSwitch policies reject,
# port security (one MAC), a MAC ACL, DHCP snooping, DAI with static bindings for the
# two guests, IP Source Guard ip-mac, storm control with limits far above the test.
write_portcullis_config() { # FILE BACKEND
  # AF_PACKET is the default: no key, so that builds without backends run too.
  local backend=""
  [ "$2" = af_packet ] || backend="backend = \"$2\""
  cat >"$1" <<EOF
[switch]
name = "peers"

[[port_group]]
name = "guests"
vlan = 10
security = { promiscuous = "reject", mac_changes = "reject", forged_transmits = "reject" }
port_security = { max_macs = 1, violation = "shutdown" }
storm_control = { broadcast_pps = 1000000, multicast_pps = 1000000, unknown_unicast_pps = 1000000 }
mac_acl_in = "guests-in"
dhcp_snooping = { rate_limit_pps = 20 }
arp_inspection = { validate = ["src-mac", "dst-mac", "ip"] }
ip_source_guard = "ip-mac"

[[mac_acl]]
name = "guests-in"
rules = [
  { action = "deny", dst = "01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0" },
  { action = "permit", ethertype = "ipv4" },
  { action = "permit", ethertype = "arp" },
  { action = "deny" },
]

[[host.port]]
name = "g1"
interface = "pcbs1"
port_group = "guests"
mac = "$MAC1"
$backend

[[host.port]]
name = "g2"
interface = "pcbs2"
port_group = "guests"
mac = "$MAC2"
$backend

[[host.static_binding]]
mac = "$MAC1"
ip = "$IP1"
port = "g1"

[[host.static_binding]]
mac = "$MAC2"
ip = "$IP2"
port = "g2"
EOF
}
# Whether this binary has the AF_XDP backend (its configuration accepts it).
portcullis_has_af_xdp() {
  local cfg=$WORK/probe.toml
  write_portcullis_config "$cfg" af_xdp && "$PORTCULLIS" validate "$cfg" >/dev/null 2>&1
}

start_portcullis() { # NAME BACKEND
  local name=$1 backend=$2 cfg=$WORK/$1.toml
  rm -rf "$WORK/portcullis-state" "$PC_SOCKET"
  write_portcullis_config "$cfg" "$backend" || return 1
  cp "$cfg" "$LOGS/$name.toml" || return 1
  "$PORTCULLIS" validate "$cfg" || return 1
  ip netns exec "$SW" taskset -c "$SWITCH_CPU" "$PORTCULLIS" daemon --config "$cfg" --socket "$PC_SOCKET" \
    --state-dir "$WORK/portcullis-state" </dev/null >/dev/null 2>"$LOGS/$name.log" &
  PC_PID=$!
  STARTED+=("$PC_PID")
  SWITCH_PID=$PC_PID
  wait_socket "$PC_PID" "$PC_SOCKET" 15 || { echo "portcullis daemon did not start (see $LOGS/$name.log)"; return 1; }
  sleep 0.3 # the RX rings settle
  # The backend the daemon actually uses (it falls back to AF_PACKET, with a warning).
  local used
  used=$(PORTCULLIS_SOCKET=$PC_SOCKET timeout 10 "$PORTCULLIS" show ports --json 2>/dev/null |
    python3 "$HELPER" backends) || true
  if [ "$backend" != af_packet ] && [ "$used" != "$backend $backend" ]; then
    echo "the ports use '${used:-?}', not $backend (see $LOGS/$name.log)"
    return 1
  fi
}
stop_portcullis() { # NAME
  if [ -n "$PC_PID" ]; then
    PORTCULLIS_SOCKET=$PC_SOCKET timeout 10 "$PORTCULLIS" show counters >"$LOGS/$1-counters.txt" 2>&1 || true
    PORTCULLIS_SOCKET=$PC_SOCKET timeout 10 "$PORTCULLIS" show ports --json >"$LOGS/$1-ports.json" 2>&1 || true
    stop_pid "$PC_PID"
  fi
  PC_PID=""
}
up_portcullis() { start_portcullis portcullis af_packet; }
down_portcullis() { stop_portcullis portcullis; }
up_portcullis-afxdp() { start_portcullis portcullis-afxdp af_xdp; }
down_portcullis-afxdp() { stop_portcullis portcullis-afxdp; }

# ---- measurements -------------------------------------------------------------------
set_tx() { # on|off, both guests
  in_ns "$G1" ethtool -K eth0 tx "$1" >/dev/null 2>&1 || say "  ethtool -K eth0 tx $1 failed in $G1"
  in_ns "$G2" ethtool -K eth0 tx "$1" >/dev/null 2>&1 || say "  ethtool -K eth0 tx $1 failed in $G2"
}

# One iperf3 run g1 → g2; records "ok GBPS RETRANSMITS" or "failed REASON".
tcp_run() { # KIND SWITCH RUN
  local kind=$1 sw=$2 run=$3 json=$LOGS/$2-$1-$3.json spid rc i line tl0 tl1
  ip netns exec "$G2" iperf3 -s -1 -p 5201 </dev/null >"$LOGS/$sw-$kind-$run-server.txt" 2>&1 &
  spid=$!
  STARTED+=("$spid")
  for i in $(seq 30); do
    in_ns "$G2" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  IFS=$'\t' read -r _ tl0 < <(switch_counters "$sw"; echo)
  rc=0
  timeout -k 2 $((TCP_SECS + 15)) ip netns exec "$G1" \
    iperf3 -c $IP2 -p 5201 -t "$TCP_SECS" -O 1 -J --connect-timeout 3000 \
    </dev/null >"$json" 2>>"$LOGS/$sw-$kind-$run-client.err" || rc=$?
  stop_pid "$spid"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    line=$'failed\ttimed out (iperf3 hung; killed after '$((TCP_SECS + 15))' s)'
  else
    line=$(python3 "$HELPER" iperf "$json")
  fi
  # Frames the switch forwarded g1 → g2 but could not send, when it tells.
  IFS=$'\t' read -r _ tl1 < <(switch_counters "$sw"; echo)
  if [[ $line == ok* ]] && [ -n "$tl0" ] && [ -n "$tl1" ]; then
    line+=$'\t'"$((tl1 - tl0)) frames not sent by the switch"
  fi
  record "$kind" "$sw" "$run" "$line"
  say "  $kind run $run: ${line//$'\t'/ }"
}

# One UDP run: trafgen floods g1 → g2 for UDP_SECS (+ warm-up); records delivered and
# offered packets per second and the CPU of the switch and of the generator.
# The fast counters, read together, as one line: "TIME TX RX VETH_DROP SWITCH_TICKS
# GEN_TICKS SOFTIRQ": TIME (ns) is the middle of the reads; g1's tx_packets (offered),
# g2's rx_packets (delivered), the veth to g2's tx_dropped, then CPU ticks ("-" when
# there is no switch process). GEN_PIDS: the generator's processes.
fast_sample() { # GEN_PIDS...
  local ta tb tx rx vd swt=- gen=0 si p t
  ta=$(now_ns)
  read -r tx < <(in_ns "$G1" cat /sys/class/net/eth0/statistics/tx_packets)
  read -r rx < <(in_ns "$G2" cat /sys/class/net/eth0/statistics/rx_packets)
  read -r vd < <(in_ns "$SW" cat /sys/class/net/pcbs2/statistics/tx_dropped)
  if [ -n "$SWITCH_PID" ]; then
    swt=$(proc_ticks "$SWITCH_PID" || true)
    [ -n "$swt" ] || swt=gone
  fi
  for p in "$@"; do
    t=$(proc_ticks "$p" || true)
    gen=$((gen + ${t:-0}))
  done
  si=$(softirq_ticks)
  tb=$(now_ns)
  echo "$(((ta + tb) / 2)) $tx $rx $vd $swt $gen $si"
}

# The userspace switch's own counters with the time they were read: "TIME<tab>TAKEN_IN
# <tab>TX_LOST" (see switch_counters). Slower than fast_sample (an API call), so it
# has its own time stamps and brackets the fast window.
slow_sample() { # SWITCH
  local c
  c=$(switch_counters "$1")
  printf '%s\t%s\n' "$(now_ns)" "$c"
}

# One UDP run: trafgen floods g1 → g2 for UDP_SECS (+ warm-up); records delivered and
# offered packets per second and the CPU of the switch and of the generator.
udp_run() { # SWITCH RUN [perf]
  local sw=$1 run=$2 perf=${3:-} tpid tg="" tgc="" i
  local t0 tx0 rx0 vd0 sw0 gen0 si0 t1 tx1 rx1 vd1 sw1 gen1 si1 s0 in0 tl0 s1 in1 tl1 pmd=""
  # timeout(1) runs taskset, which becomes trafgen; trafgen forks one sender, which
  # pins itself to CPU 0 (trafgen's own default): re-pin it to GEN_CPU.
  ip netns exec "$G1" timeout -k 2 $((UDP_SECS + 3)) taskset -c "$GEN_CPU" \
    trafgen --dev eth0 --conf "$TRAFGEN_CONF" -P 1 -q </dev/null >"$LOGS/$sw-udp-$run-trafgen.txt" 2>&1 &
  tpid=$!
  STARTED+=("$tpid")
  for i in $(seq 40); do
    tg=$(children_of "$tpid" | head -1)
    [ -n "$tg" ] && tgc=$(children_of "$tg" | head -1)
    [ -n "$tgc" ] && break
    sleep 0.05
  done
  if [ -z "$tgc" ]; then
    stop_pid "$tpid"
    record udp "$sw" "$run" failed "trafgen did not start (see $LOGS/$sw-udp-$run-trafgen.txt)"
    return
  fi
  STARTED+=("$tg" "$tgc")
  taskset -pc "$GEN_CPU" "$tgc" >/dev/null 2>&1 || true
  sleep 1
  [ "$sw" = ovs-afxdp ] && pmd_stats_clear
  IFS=$'\t' read -r s0 in0 tl0 < <(slow_sample "$sw")
  read -r t0 tx0 rx0 vd0 sw0 gen0 si0 < <(fast_sample "$tg" "$tgc")
  if [ -n "$perf" ]; then
    local target=(-a -C "$GEN_CPU")
    [ -n "$SWITCH_PID" ] && target=(-p "$SWITCH_PID")
    timeout $((UDP_SECS + 10)) perf record -q -e cpu-clock -F 999 -g "${target[@]}" \
      -o "$OUT/perf-$sw.data" -- sleep "$UDP_SECS" >"$LOGS/$sw-perf.txt" 2>&1 || true
  else
    sleep "$UDP_SECS"
  fi
  read -r t1 tx1 rx1 vd1 sw1 gen1 si1 < <(fast_sample "$tg" "$tgc")
  IFS=$'\t' read -r s1 in1 tl1 < <(slow_sample "$sw")
  [ "$sw" = ovs-afxdp ] && pmd=$(pmd_busy_pct)
  # trafgen quits on a send error (e.g. ENOBUFS when a backlog overflows): a window
  # it did not cover measures nothing.
  local gen_alive=1
  alive "$tgc" || gen_alive=0
  wait "$tpid" 2>/dev/null || true
  stop_pid "$tgc"
  stop_pid "$tg"
  if [ -n "$perf" ]; then
    {
      echo "# flat: by binary, then by symbol (self time)"
      timeout 120 perf report -i "$OUT/perf-$sw.data" --stdio --no-children -g none --sort dso 2>&1
      timeout 120 perf report -i "$OUT/perf-$sw.data" --stdio --no-children -g none --sort dso,sym \
        --percent-limit 0.5 2>&1
      echo "# call graphs"
      timeout 120 perf report -i "$OUT/perf-$sw.data" --stdio --no-children --percent-limit 1 2>&1
    } >"$OUT/perf-$sw.txt" || true
    say "  perf profile: $OUT/perf-$sw.txt"
    return
  fi
  if [ "$gen_alive" = 0 ]; then
    record udp "$sw" "$run" failed "trafgen stopped during the window: $(grep -m1 -i 'fail' "$LOGS/$sw-udp-$run-trafgen.txt" || echo 'see its log')"
    return
  fi
  if [ "$sw1" = gone ] || { [ -n "$SWITCH_PID" ] && ! alive "$SWITCH_PID"; }; then
    record udp "$sw" "$run" failed "the switch process died during the run"
    return
  fi
  local line
  line=$(awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v tx=$((tx1 - tx0)) -v rx=$((rx1 - rx0)) \
    -v vd=$((vd1 - vd0)) -v sw0="$sw0" -v sw1="$sw1" -v g=$((gen1 - gen0)) -v si=$((si1 - si0)) \
    -v s0="$s0" -v s1="$s1" -v in0="$in0" -v in1="$in1" -v tl0="$tl0" -v tl1="$tl1" 'BEGIN {
      s = (t1 - t0) / 1e9
      swc = (sw0 == "-" ? "" : sprintf("%.1f", (sw1 - sw0) / hz / s * 100))
      ss = (s1 - s0) / 1e9
      inp = (in0 == "" || in1 == "" ? "" : sprintf("%.0f", (in1 - in0) / ss))
      tlp = (tl0 == "" || tl1 == "" ? "" : sprintf("%.0f", (tl1 - tl0) / ss))
      printf "ok\t%.0f\t%.0f\t%s\t%.1f\t%.1f\t%.3f\t%s\t%.0f\t%s", rx / s, tx / s, swc, g / hz / s * 100, si / hz / s * 100, s, inp, vd / s, tlp
    }')
  line+=$'\t'"$pmd"
  record udp "$sw" "$run" "$line"
  say "  udp run $run: $(awk -F'\t' '{ printf "delivered %.3f Mpps, offered %.3f Mpps, taken in by the switch %s pps, not sent by it %s pps, dropped at g2'"'"'s veth %s pps, switch CPU %s %%, generator %s %%, softirq %s %%", $2/1e6, $3/1e6, ($8 == "" ? "-" : $8), ($10 == "" ? "-" : $10), $9, ($4 == "" ? "-" : $4), $5, $6; if ($11 != "") printf ", PMD processing %s %% of its cycles", $11 }' <<<"$line")"
}

measure() { # SWITCH
  local sw=$1 run
  if in_ns "$G1" ping -c 3 -i 0.2 -W 1 -q $IP2 >"$LOGS/$sw-ping.txt" 2>&1; then
    say "  ping g1 → g2: ok"
  else
    say "  ping g1 → g2: FAILED (measuring anyway; see $LOGS/$sw-ping.txt)"
  fi
  # Latency through the idle switch: 50 pings, 20 ms apart (ARP already resolved).
  local rtt
  if in_ns "$G1" ping -c 50 -i 0.02 -W 1 -q $IP2 >"$LOGS/$sw-rtt.txt" 2>&1 &&
    rtt=$(awk -F' = ' '/^rtt/ { split($2, v, "/"); printf "%s\t%s\t%s", v[1], v[2], v[3] }' "$LOGS/$sw-rtt.txt") &&
    [ -n "$rtt" ]; then
    record rtt "$sw" 1 ok "$rtt"
    say "  ping RTT (min/avg/max ms): ${rtt//$'\t'//}"
  else
    record rtt "$sw" 1 failed "ping lost replies (see $LOGS/$sw-rtt.txt)"
    say "  ping RTT: FAILED"
  fi
  set_tx on
  for run in $(seq "$RUNS"); do tcp_run tcp_on "$sw" "$run"; done
  set_tx off
  for run in $(seq "$RUNS"); do tcp_run tcp_off "$sw" "$run"; done
  set_tx on
  for run in $(seq "$RUNS"); do udp_run "$sw" "$run"; done
  [ "$PERF" = 1 ] && udp_run "$sw" perf perf
  return 0
}

# ---- the run ------------------------------------------------------------------------
{
  echo "date: $(date -Iseconds)"
  echo "kernel: $(uname -r); nproc: $ncpu; CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "load before: $(cat /proc/loadavg)"
  echo "portcullis: $PORTCULLIS, built $(date -r "$PORTCULLIS" -Iseconds 2>/dev/null || echo '?'); HEAD now $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ', crates/ modified in the work tree')"
  echo "iperf3: $(iperf3 --version | head -1); trafgen: $(trafgen -v 2>/dev/null | head -1); $(ovs-vswitchd --version | head -1) ($(dpkg-query -W -f '${Package} ${Version}' libxdp1 2>/dev/null || echo 'libxdp ?'))"
  echo "runs $RUNS, TCP ${TCP_SECS} s, UDP window ${UDP_SECS} s; trafgen on CPU $GEN_CPU, userspace switches on CPU $SWITCH_CPU"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

for sw in $SWITCHES; do
  if [ "$sw" = portcullis-afxdp ] && ! portcullis_has_af_xdp; then
    record na "$sw" "n/a (not implemented)"
    continue
  fi
  case $sw in linux-bridge | bridge-nft) kind=kernel ;; *) kind=userspace ;; esac
  record kind "$sw" "$kind"
  say "== $sw (load $(cut -d' ' -f1-3 /proc/loadavg))"
  SWITCH_PID=""
  # Not in a subshell: up_* records the PIDs it starts.
  if up_"$sw" >"$LOGS/$sw-up.txt" 2>&1; then
    measure "$sw"
  else
    reason="switch did not start: $(tail -1 "$LOGS/$sw-up.txt")"
    say "  $reason"
    for run in $(seq "$RUNS"); do
      record tcp_on "$sw" "$run" failed "$reason"
      record tcp_off "$sw" "$run" failed "$reason"
      record udp "$sw" "$run" failed "$reason"
    done
  fi
  down_"$sw" >/dev/null 2>&1 || true
  left=$(detach_xdp | xargs)
  [ -z "$left" ] || say "  $sw left an XDP program on $left: detached"
done
echo "load after: $(cat /proc/loadavg)" >>"$OUT/machine.txt"

python3 "$HELPER" table "$RESULTS" | tee "$OUT/table.md"
say "raw results: $RESULTS; logs: $LOGS"
