#!/usr/bin/env bash
# Drover and etcd side by side on this machine: the same workloads through each one's native
# client, one system at a time (never both running: two cores), both syncing their logs.
#
#   scripts/bench-vs-etcd.sh                 put and get at 1, 16, 64 and 256 clients
#   DURATION=20s CLIENTS="16 64" WORKLOADS="put get transition" scripts/bench-vs-etcd.sh
#
# Prints one table with the ratio Drover/etcd per row; raw results (JSON lines) go to
# $OUT (default .drover/bench/results.jsonl). Always the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-"1 16 64 256"}
WORKLOADS=${WORKLOADS:-"put get"}
OUT=${OUT:-$PWD/.drover/bench/results.jsonl}
WORK=$(mktemp -d)
BENCH="$CARGO_TARGET_DIR/release/drover-bench"
export DROVER_CLUSTER_DIR=$WORK/drover

bash scripts/setup.sh
if ! command -v etcd >/dev/null; then
  echo "bench: installing etcd-server" >&2
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq etcd-server >/dev/null
fi
PROFILE=release bash scripts/build.sh

ETCD_PIDS=()
cleanup() {
  for p in "${ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  PROFILE=release bash scripts/cluster.sh clean >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$(dirname "$OUT")"
: >"$OUT"
run_all() { # target endpoints
  for w in $WORKLOADS; do
    for c in $CLIENTS; do
      echo "  $1 $w clients=$c" >&2
      "$BENCH" run --target "$1" --endpoints "$2" --workload "$w" --clients "$c" \
        --duration "$DURATION" --json >>"$OUT"
    done
  done
}

echo "== etcd $(etcd --version | head -1 | awk '{print $3}'): three members on 127.0.0.1" >&2
CLUSTER="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
    --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
    --log-level error >"$WORK/etcd$i.log" 2>&1 &
  ETCD_PIDS+=($!)
done
EPS="http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
run_all etcd "$EPS"
for p in "${ETCD_PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
ETCD_PIDS=()

echo "== drover: three nodes on 127.0.0.1 (release)" >&2
PROFILE=release bash scripts/cluster.sh up >/dev/null
run_all drover 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
PROFILE=release bash scripts/cluster.sh clean >/dev/null

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["target"], r["workload"], r["clients"]): r for r in rows}
keys = sorted({(r["workload"], r["clients"]) for r in rows}, key=lambda k: (k[0], k[1]))
print("| workload | clients | etcd ops/s | drover ops/s | drover/etcd | etcd p50 / p99 ms | drover p50 / p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for w, c in keys:
    e, d = by.get(("etcd", w, c)), by.get(("drover", w, c))
    if not e or not d:
        continue
    ratio = d["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("inf")
    print(f"| {w} | {c} | {e['ops_per_sec']:.0f} | {d['ops_per_sec']:.0f} | {ratio:.2f} | "
          f"{e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} |")
errs = [r for r in rows if r["errors"]]
for r in errs:
    print(f"note: {r['target']} {r['workload']} clients={r['clients']} had {r['errors']} errors")
PY
