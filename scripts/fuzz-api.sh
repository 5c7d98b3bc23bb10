#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis: starts a fresh three-node cluster on a loopback address
# of its own, waits for a leader, and runs schemathesis against a follower's /openapi.json (so
# forwarding is exercised too). Fails on any 500, any status the document does not list, any
# wrong content type, any body that violates its schema, and any undocumented method that is not
# a 405 with a right `Allow` header. The membership endpoints (they would shrink the cluster
# under the run) and /debug are left out. Stateful checks such as use_after_free are not run:
# a `stale=true` read through a follower may rightly trail a write.
#
#   FUZZ_EXAMPLES=N      test cases per operation and phase (default 20)
#   FUZZ_SEED=N          schemathesis seed, to replay a run (default random; printed)
#   FUZZ_THROUGH=follower|leader   the node schemathesis talks to (default follower)
#   FUZZ_ARGS="..."      extra schemathesis flags (e.g. "--phases fuzzing --max-failures 1")
#   PROFILE              cargo profile of the drover binary (default dev)
#   CARGO_TARGET_DIR     build cache (default $HOME/.cache/drover/target)
#
# schemathesis is installed from PyPI, pinned, into a venv under $HOME/.cache/drover; a second
# run installs nothing. The nodes' logs are printed when the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=$HOME/.cache/drover
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
PROFILE=${PROFILE:-dev}
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
BIN="$CARGO_TARGET_DIR/$OUT/drover"
EXAMPLES=${FUZZ_EXAMPLES:-20}
SEED=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
# Pinned: schemathesis 4 renamed many flags of 3, and a new release may add checks.
SCHEMATHESIS_VERSION=4.32.5
VENV=$CACHE/venv

install_schemathesis() {
  if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
    return
  fi
  # Debian's python3 needs python3-venv for `python3 -m venv` (it brings ensurepip).
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "fuzz: installing python3-venv" >&2
    local sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-venv >/dev/null
  fi
  echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

install_schemathesis
echo "== build drover (profile $PROFILE)"
PROFILE=$PROFILE bash scripts/build.sh

# A loopback address of our own (127.x.y.z), so parallel runs and test clusters never collide.
IP="127.$((RANDOM % 240 + 10)).$((RANDOM % 249 + 1)).$((RANDOM % 249 + 1))"
addr() { echo "$IP:$((7000 + $1))"; }
INITIAL="1=$(addr 1),2=$(addr 2),3=$(addr 3)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/drover-fuzz.XXXXXX")
ADMIN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    for n in 1 2 3; do
      echo "---- node $n log (last 30 lines) ----" >&2
      tail -n 30 "$WORK/node$n.log" >&2 2>/dev/null || true
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a copy: another checkout building into the same shared target dir would otherwise swap
# the binary under the run.
cp "$BIN" "$WORK/drover"
BIN=$WORK/drover

for n in 1 2 3; do
  DROVER_ADMIN_TOKEN=$ADMIN DROVER_WORKER_TOKEN="worker-$ADMIN" DROVER_CLUSTER_SECRET="secret-$ADMIN" \
    DROVER_LOG=${DROVER_LOG:-info} \
    "$BIN" --id "$n" --listen "$(addr "$n")" --data-dir "$WORK/node$n" \
    --initial-cluster "$INITIAL" >"$WORK/node$n.log" 2>&1 &
  PIDS+=("$!")
done

# Healthy: every node ready (a leader known, its log applied) and all agree on the leader.
leader=""
for _ in $(seq 1 150); do
  ready=0 leaders=()
  for n in 1 2 3; do
    curl -fsS "http://$(addr "$n")/readyz" >/dev/null 2>&1 && ready=$((ready + 1))
    # A node not listening yet is "none", not the end of the run (set -e with pipefail).
    l=$(curl -fsS -H "Authorization: Bearer $ADMIN" "http://$(addr "$n")/v1/cluster" 2>/dev/null |
      sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p' || true)
    leaders+=("${l:-none}")
  done
  if [ "$ready" -eq 3 ] && [ "${leaders[0]}" != none ] &&
    [ "${leaders[0]}" = "${leaders[1]}" ] && [ "${leaders[1]}" = "${leaders[2]}" ]; then
    leader=${leaders[0]}
    break
  fi
  sleep 0.2
done
[ -n "$leader" ] || { echo "fuzz: the cluster did not elect a leader" >&2; exit 1; }
# Seed the state schemathesis cannot build by itself, so responses carry replicas, peers, drain
# progress and every kind of event: four Active workers in two zones that keep heartbeating, and
# a partition table the scheduler places on them (the replicas stay joining: no agent acks).
api() {
  curl -fsS -o /dev/null -X "$1" -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    "http://$(addr "$leader")$2" ${3:+--data "$3"}
}
for w in 1 2 3 4; do
  api PUT "/v1/workers/seed-$w" "{\"incarnation\": 1, \"address\": \"127.0.0.1:$((9000 + w))\", \"zone\": \"z$((w % 2))\"}"
  api POST "/v1/workers/seed-$w/state" '{"state": "active"}'
done
api POST /v1/partitions '{"count": 16, "replication_factor": 3}'
# The heartbeat loop does what an agent does when a heartbeat's answer asks it to register
# again (an operator's recommission, which schemathesis may send): it registers, and beats at
# the new generation.
beat() {
  curl -sS -X POST -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    "http://$(addr "$leader")/v1/workers/seed-$1/heartbeat" --data "{\"generation\": $2}" 2>/dev/null || true
}
register_again() {
  curl -sS -X PUT -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    "http://$(addr "$leader")/v1/workers/seed-$1" \
    --data "{\"incarnation\": $RANDOM$RANDOM, \"address\": \"127.0.0.1:$((9000 + $1))\", \"zone\": \"z$(($1 % 2))\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["generation"])'
}
(
  gen=(0 1 1 1 1)
  while true; do
    for w in 1 2 3 4; do
      case "$(beat "$w" "${gen[$w]}")" in
        *'"register_again":true'*) gen[w]=$(register_again "$w" 2>/dev/null || echo "${gen[$w]}") ;;
      esac
    done
    sleep 0.5
  done
) &
PIDS+=("$!")

case "${FUZZ_THROUGH:-follower}" in
  leader) target=$leader ;;
  follower) target=$((leader % 3 + 1)) ;;
  *) echo "fuzz: FUZZ_THROUGH is leader or follower" >&2; exit 2 ;;
esac
echo "== cluster at $IP: leader $leader; fuzzing through node $target (${FUZZ_THROUGH:-follower})"

# Warnings that mean the document itself is broken (a dangling $ref, a pattern schemathesis
# cannot use, a documented method the server does not route) fail the run like a failed check.
#
# The long poll's `after` is pinned to 0, so a poll answers at once: with a random `after` each
# poll of an existing worker would wait out its `wait` (up to a minute). Its parsing of `wait` is
# still fuzzed; waking on a commit is tested in tests/api.rs.
#
# Recommissioning a worker the leader has not heard since its registration is 503 unavailable by
# design (SPEC §4: ask again; its agent's first heartbeat settles it) — the fuzzer registers
# workers no agent runs for, so that answer is allowed there and nowhere else.
cat >"$WORK/schemathesis.toml" <<'TOML'
[warnings]
fail-on = ["unresolvable_reference", "unsupported_regex", "method_not_allowed", "unmatched_filter", "unused_openapi_auth", "base_url_mismatch"]

[[operations]]
include-operation-id = "poll_assignments"
parameters = { "query.after" = 0 }

[[operations]]
include-operation-id = "recommission_worker"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
TOML

echo "== schemathesis $SCHEMATHESIS_VERSION: $EXAMPLES examples per operation, seed $SEED"
start=$SECONDS
# Run from the scratch dir: schemathesis may write reports and caches to the working directory.
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
  run "http://$(addr "$target")/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
  --exclude-path-regex '^/(v1/cluster/members|debug/)' \
  --header "Authorization: Bearer $ADMIN" \
  --max-examples "$EXAMPLES" \
  --seed "$SEED" \
  --request-timeout 75 \
  --generation-database none \
  --no-color \
  ${FUZZ_ARGS:-})
echo "== fuzz passed in $((SECONDS - start)) s (seed $SEED)"
