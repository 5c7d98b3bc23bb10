#!/usr/bin/env bash
# The whole of Drover on one machine: a three-node cluster, six example workers in three zones,
# a table of 32 partitions at RF 3, a worker drained to Disabled while you watch, then a rolling
# restart of the others that moves no replica.
#
#   scripts/demo.sh         build, start everything, drain w1, leave it all running
#   scripts/demo.sh --tls   the same over TLS: a throwaway CA (droverctl certs) in
#                           .drover/cluster/tls, client-certificate peers, HTTPS everywhere
#   scripts/demo.sh down    stop the workers and the cluster and delete the demo's data
#
# Nodes listen on 127.0.0.1:7001-7003 (data and logs under .drover/cluster); workers log to
# .drover/demo. PROFILE picks the cargo profile (default dev).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
PROFILE=${PROFILE:-dev}
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
BIN="$CARGO_TARGET_DIR/$OUT"
DEMO=${DROVER_DEMO_DIR:-$PWD/.drover/demo}
export DROVER_CLUSTER_DIR=${DROVER_CLUSTER_DIR:-$PWD/.drover/cluster}
export DROVER_ENDPOINTS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
ctl() { "$BIN/droverctl" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Polls `$2` (a shell condition) every 0.5 s for at most $1 seconds.
wait_until() {
  local deadline=$(($(date +%s) + $1))
  until eval "$2"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "demo: timed out waiting for: $3" >&2; return 1; fi
    sleep 0.5
  done
}

down() {
  for f in "$DEMO"/*.pid; do
    [ -e "$f" ] || continue
    kill -KILL "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  bash scripts/cluster.sh clean
  rm -rf "$DEMO"
  echo "demo stopped; its data is deleted"
}

# JSON checks, in python3 (installed by setup.sh).
active_workers() { ctl -o json workers list --state active | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
placed() {
  # Every partition has 3 serving replicas, on workers in 3 distinct zones.
  ctl -o json workers list >"$DEMO/workers.json"
  ctl -o json partitions list | python3 -c '
import json, sys
zones = {w["id"]: w.get("zone") for w in json.load(open(sys.argv[1]))}
parts = json.load(sys.stdin)
ok = all(len(p["replicas"]) == 3 and all(r["role"] == "serving" for r in p["replicas"])
         and len({zones.get(r["worker"]) for r in p["replicas"]}) == 3 for p in parts)
sys.exit(0 if parts and ok else 1)' "$DEMO/workers.json"
}
drain_line() {
  ctl -o json workers show w1 | python3 -c '
import json, sys
w = json.load(sys.stdin)
d = w.get("drain") or {}
left = d.get("replicas_remaining", len(w.get("replicas", [])))
print(w["state"], left, d.get("replicas_total", "?"), d.get("moves_in_flight", 0))'
}

up() {
  local tls=${1:-}
  bash scripts/setup.sh
  say "building drover, droverctl and the example worker ($PROFILE)"
  PROFILE=$PROFILE bash scripts/build.sh
  if [ -d "$DEMO" ] || [ -d "$DROVER_CLUSTER_DIR" ]; then
    say "a previous demo is here: stopping it first"
    down
  fi
  mkdir -p "$DEMO"
  if [ "$tls" = --tls ]; then
    say "TLS: a throwaway certificate authority"
    export DROVER_TLS_DIR="$DROVER_CLUSTER_DIR/tls"
    ctl certs --dir "$DROVER_TLS_DIR"
    # droverctl and the example workers read it from the environment.
    export DROVER_CACERT="$DROVER_TLS_DIR/ca.pem"
  fi

  say "starting three nodes"
  bash scripts/cluster.sh up >/dev/null
  ctl members list

  say "starting six workers in zones a, b, c"
  local zones=(a b c)
  for i in 1 2 3 4 5 6; do
    "$BIN/examples/worker" --id "w$i" --zone "${zones[$(((i - 1) % 3))]}" \
      --address "127.0.0.1:$((9000 + i))" >"$DEMO/w$i.log" 2>&1 &
    echo $! >"$DEMO/w$i.pid"
  done
  wait_until 60 '[ "$(active_workers 2>/dev/null)" = 6 ]' "six active workers"
  ctl workers list

  say "creating 32 partitions at replication factor 3"
  ctl partitions create --count 32 --replication-factor 3
  wait_until 120 'placed 2>/dev/null' "every partition placed in three zones"
  ctl status
  ctl workers list
  ctl partitions list | head -9
  echo "  ... (droverctl partitions list shows all 32)"

  say "draining w1: the plan first (dry run), then for real"
  local plan
  plan=$(ctl workers drain w1 --dry-run)
  echo "$plan" | head -6
  echo "  ... $(echo "$plan" | grep -c ' w1 ') moves in all"
  echo "$plan" | tail -1
  ctl workers drain w1 >/dev/null
  local deadline=$(($(date +%s) + 180)) last=""
  while :; do
    read -r state left total moving < <(drain_line)
    local line="w1: $state, $left of $total replicas left, $moving moving"
    [ "$state" = disabled ] && line="w1: disabled, holding nothing"
    [ "$line" != "$last" ] && echo "  $line" && last=$line
    [ "$state" = disabled ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "demo: w1 did not reach disabled; see 'droverctl workers show w1'" >&2
      return 1
    fi
    sleep 0.3
  done

  wait_until 60 'placed 2>/dev/null' "every partition at RF 3 in three zones"
  say "rolling restart of the five active workers, one at a time, without moving data"
  # Each worker goes into maintenance (its leaderships move off, it is not declared dead),
  # gets SIGHUP (the example worker gives its lease up and executes itself again), and comes
  # back at a new generation with the same replicas; droverctl compares replica sets at the end.
  ctl rolling-restart --for 2m --exec "kill -HUP \$(cat '$DEMO/{id}.pid')"

  say "result"
  ctl workers list
  wait_until 60 'placed 2>/dev/null' "every partition at RF 3 in three zones"
  echo "every partition has 3 serving replicas in 3 zones; w1 holds nothing and is disabled;"
  echo "w2-w6 restarted at new generations and not one replica moved."
  echo
  echo "The cluster and workers keep running. Try:"
  echo "  export DROVER_ENDPOINTS=$DROVER_ENDPOINTS"
  [ -n "${DROVER_CACERT:-}" ] && echo "  export DROVER_CACERT=$DROVER_CACERT DROVER_TLS_DIR=$DROVER_TLS_DIR"
  echo "  $BIN/droverctl workers list        # or: watch, events, partitions locate 42"
  echo "  scripts/cluster.sh kill 1            # and see a new leader take over"
  echo "Stop everything with: scripts/demo.sh down"
}

case "${1:-up}" in
  up) up ;;
  --tls) up --tls ;;
  down) down ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
