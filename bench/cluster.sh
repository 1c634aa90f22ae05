#!/usr/bin/env bash
# Cluster scale figures (issue 18, item 6), one run, as a table (docs/cluster.md
# keeps the last one). Needs root, etcd-server and protoc (scripts/test.sh installs
# them). Everything runs in one network namespace this script creates (etcd on
# its loopback, every daemon in it) and removes, even on failure.
#
# 1. examples/scale.rs against etcd: binding write rate (per lease, batched), the
#    load of 100,000 bindings, the replica's memory per binding.
# 2. A profile change rolled out to N hosts (3 and 10 daemons, release build):
#    `apply --cluster` until every host reports the new generation, against the
#    same change applied locally on one single-host daemon (the baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
cargo build --release -q -p portcullis --bin portcullis
cargo build --release -q -p portcullis-cluster --example scale
BIN=$PWD/target/release/portcullis
SCALE=$PWD/target/release/examples/scale
NS=pcbench-cluster-$$
DIR=$(mktemp -d /tmp/pcbench-cluster.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
EP=http://127.0.0.1:23790
ip netns exec "$NS" etcd --name b1 --data-dir "$DIR/etcd" \
  --listen-client-urls $EP --advertise-client-urls $EP \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster b1=http://127.0.0.1:23800 >"$DIR/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ip netns exec "$NS" etcdctl --endpoints $EP endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

echo "## etcd: bindings (examples/scale.rs)"
ip netns exec "$NS" "$SCALE" $EP 100000 1000

profile() { # $1: 0 or 1 (two profiles that differ in one port group)
  printf '[switch]\nname = "bench"\n\n[[port_group]]\nname = "web"\nvlan = 10\n'
  [ "$1" = 1 ] && printf '\n[[port_group]]\nname = "db"\nvlan = 20\n'
  true
}
profile 0 >"$DIR/p0.toml"
profile 1 >"$DIR/p1.toml"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Baseline: the same change applied locally on a single-host daemon.
ip netns exec "$NS" "$BIN" daemon --config "$DIR/p0.toml" --socket "$DIR/solo.sock" --state-dir "$DIR/solo" >"$DIR/solo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$DIR/solo.sock" ] && break; sleep 0.1; done
sleep 0.5
base=()
for r in $(seq "$ROUNDS"); do
  t=$(date +%s%N); ip netns exec "$NS" "$BIN" apply --socket "$DIR/solo.sock" "$DIR/p$((r % 2)).toml" >/dev/null; base+=("$(ms "$t")")
done
base_ms=$(printf '%s\n' "${base[@]}" | median)

rollout() { # $1: hosts
  local n=$1 first=${#PIDS[@]}
  for i in $(seq "$n"); do
    ip netns exec "$NS" "$BIN" daemon --config "$DIR/p0.toml" --socket "$DIR/h$n-$i.sock" --state-dir "$DIR/h$n-$i" \
      --cluster $EP --host-id "h$n-$i" >"$DIR/h$n-$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 100); do
    live=$(ip netns exec "$NS" "$BIN" cluster status --cluster $EP --json | grep -c '"health": "ok"' || true)
    [ "$live" -ge "$n" ] && break; sleep 0.1
  done
  local times=()
  for r in $(seq "$ROUNDS"); do
    t=$(date +%s%N)
    ip netns exec "$NS" "$BIN" apply --cluster $EP "$DIR/p$((r % 2)).toml" >"$DIR/apply.out"
    grep -q "$n of $n host(s) applied" "$DIR/apply.out" || { cat "$DIR/apply.out"; exit 1; }
    times+=("$(ms "$t")")
  done
  for p in "${PIDS[@]:$first}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  PIDS=("${PIDS[@]:0:$first}")
  printf '%s\n' "${times[@]}" | median
}
r3=$(rollout 3)
r10=$(rollout 10)
per_host=$(( (r10 - r3) / 7 ))
echo
echo "## profile roll-out (median of $ROUNDS, ms; \`apply --cluster\` until every host reports it)"
echo "| hosts | roll-out | vs local apply on one host ($base_ms ms) |"
echo "|---|---|---|"
echo "| 3 | $r3 ms | $(awk "BEGIN {printf \"%.1f\", $r3 / $base_ms}")× |"
echo "| 10 | $r10 ms | $(awk "BEGIN {printf \"%.1f\", $r10 / $base_ms}")× |"
echo "| per extra host (10 vs 3) | $per_host ms | |"
