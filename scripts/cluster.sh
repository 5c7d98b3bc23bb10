#!/usr/bin/env bash
# A local three-node Drover cluster on loopback.
#
#   scripts/cluster.sh up           build drover and start nodes 1-3 (127.0.0.1:7001-7003)
#   scripts/cluster.sh status       each node's view of the cluster
#   scripts/cluster.sh kill N       SIGKILL node N
#   scripts/cluster.sh restart N    start node N again with its data dir
#   scripts/cluster.sh down         stop every node (SIGTERM) and keep the data
#   scripts/cluster.sh clean        stop every node and delete the data
#
# Data and logs live under $DROVER_CLUSTER_DIR (default .drover/cluster); PROFILE picks the cargo
# profile (default dev). With DROVER_TLS_DIR set (a directory `droverctl certs` wrote), the nodes
# serve HTTPS with its certificates and require client certificates of each other.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${DROVER_CLUSTER_DIR:-$PWD/.drover/cluster}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
PROFILE=${PROFILE:-dev}
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
BIN="$CARGO_TARGET_DIR/$OUT/drover"
NODES=(1 2 3)
addr() { echo "127.0.0.1:700$1"; }
INITIAL="1=$(addr 1),2=$(addr 2),3=$(addr 3)"
SECRET_FILE="$DIR/cluster-secret"
TLS=${DROVER_TLS_DIR:-}
TLS_FLAGS=()
CURL=(curl -fsS)
SCHEME=http
if [ -n "$TLS" ]; then
  TLS_FLAGS=(--cert-file "$TLS/node.crt" --key-file "$TLS/node.key"
    --trusted-ca-file "$TLS/ca.pem" --peer-client-cert-auth)
  CURL=(curl -fsS --cacert "$TLS/ca.pem")
  SCHEME=https
fi

build() {
  bash scripts/setup.sh
  PROFILE=$PROFILE bash scripts/build.sh
}

pid_of() { cat "$DIR/node$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start() {
  local n=$1
  if alive "$n"; then echo "node $n already running (pid $(pid_of "$n"))"; return; fi
  mkdir -p "$DIR"
  [ -f "$SECRET_FILE" ] || head -c 24 /dev/urandom | base64 > "$SECRET_FILE"
  "$BIN" --id "$n" --listen "$(addr "$n")" --data-dir "$DIR/node$n" \
    --initial-cluster "$INITIAL" --cluster-secret-file "$SECRET_FILE" ${TLS_FLAGS[@]+"${TLS_FLAGS[@]}"} \
    >>"$DIR/node$n.log" 2>&1 &
  echo $! > "$DIR/node$n.pid"
  echo "node $n started (pid $!, $(addr "$n"), log $DIR/node$n.log)"
}

wait_ready() {
  # Ready when every node is ready (has a leader, has applied its log) and one of them leads.
  for _ in $(seq 1 150); do
    local ready=0 leader=0
    for n in "${NODES[@]}"; do
      "${CURL[@]}" "$SCHEME://$(addr "$n")/readyz" >/dev/null 2>&1 && ready=$((ready + 1))
      "${CURL[@]}" "$SCHEME://$(addr "$n")/v1/cluster" 2>/dev/null | grep -q '"state":"leader"' && leader=1
    done
    if [ "$ready" -eq "${#NODES[@]}" ] && [ "$leader" -eq 1 ]; then return 0; fi
    sleep 0.2
  done
  echo "cluster did not become ready; see $DIR/node*.log" >&2
  return 1
}

status() {
  for n in "${NODES[@]}"; do
    if alive "$n"; then
      printf 'node %s: ' "$n"
      "${CURL[@]}" "$SCHEME://$(addr "$n")/v1/cluster" || echo "(not answering)"
      echo
    else
      echo "node $n: down"
    fi
  done
}

stop() {
  local n=$1 sig=${2:-TERM}
  if alive "$n"; then
    kill "-$sig" "$(pid_of "$n")"
    for _ in $(seq 1 100); do alive "$n" || break; sleep 0.1; done
    echo "node $n stopped ($sig)"
  fi
  rm -f "$DIR/node$n.pid"
}

case "${1:-}" in
  up) build; for n in "${NODES[@]}"; do start "$n"; done; wait_ready; status ;;
  status) status ;;
  kill) stop "${2:?node number}" KILL ;;
  restart) [ -x "$BIN" ] || build; stop "${2:?node number}"; start "$2" ;;
  down) for n in "${NODES[@]}"; do stop "$n"; done ;;
  clean) for n in "${NODES[@]}"; do stop "$n"; done; rm -rf "$DIR" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
