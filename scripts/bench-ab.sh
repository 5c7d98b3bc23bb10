#!/usr/bin/env bash
# Two builds of the node, alternating on one fresh three-node cluster each time: for changes
# that have no runtime switch (an allocator, a dependency), where only alternation separates
# the change from this machine's run-to-run noise. Prints one line per build and workload.
#
#   scripts/bench-ab.sh /tmp/drover.a /tmp/drover.b [ROUNDS]     (default 3 rounds of a, b)
#   WORKLOADS="put:256 get:64" DURATION=10s scripts/bench-ab.sh A B
#
# Ports 7001-7003 must be free (it refuses otherwise). drover-bench comes from the release
# build (scripts/build.sh with PROFILE=release).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?first drover binary}
B=${2:?second drover binary}
ROUNDS=${3:-3}
WORKLOADS=${WORKLOADS:-"put:256 get:64"}
DURATION=${DURATION:-10s}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
BENCH="$CARGO_TARGET_DIR/release/drover-bench"
INITIAL="1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
for n in 1 2 3; do
  if curl -fsS -m 1 "http://127.0.0.1:700$n/healthz" >/dev/null 2>&1; then
    echo "bench-ab: something already serves 127.0.0.1:700$n" >&2
    exit 1
  fi
done
PIDS=()
DIR=
cleanup() {
  [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true
  [ ${#PIDS[@]} -eq 0 ] || wait "${PIDS[@]}" 2>/dev/null || true
  [ -z "$DIR" ] || rm -rf "$DIR"
  PIDS=()
  DIR=
}
trap cleanup EXIT
one() { # binary
  local n
  DIR=$(mktemp -d)
  local dir=$DIR
  head -c 24 /dev/urandom | base64 >"$dir/secret"
  for n in 1 2 3; do
    "$1" --id "$n" --listen "127.0.0.1:700$n" --data-dir "$dir/node$n" \
      --initial-cluster "$INITIAL" --cluster-secret-file "$dir/secret" >"$dir/node$n.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 1 150); do
    local ready=0
    for n in 1 2 3; do curl -fsS "http://127.0.0.1:700$n/readyz" >/dev/null 2>&1 && ready=$((ready + 1)); done
    [ "$ready" -eq 3 ] && break
    sleep 0.2
  done
  for w in $WORKLOADS; do
    local r peak
    r=$("$BENCH" run --target drover --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
      --workload "${w%%:*}" --clients "${w##*:}" --duration "$DURATION" --json)
    peak=$(for p in "${PIDS[@]}"; do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)
    python3 - "$r" "$1" "$peak" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"{sys.argv[2]}  {r['workload']} {r['clients']}: {r['ops_per_sec']:.0f} ops/s, "
      f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} ms, peak RSS {int(sys.argv[3]) // 1024} MiB")
PY
  done
  cleanup
}
for _ in $(seq 1 "$ROUNDS"); do
  one "$A"
  one "$B"
done
