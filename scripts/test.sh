#!/usr/bin/env bash
# Runs every check CI runs: setup, formatting, clippy, cargo deny, every test of the workspace,
# then schemathesis against the admin API (scripts/fuzz-api.sh), the demo, README's tour on it
# (scripts/readme_tour.py), and the web console in headless Chromium against the demo's
# cluster (scripts/ui-test.sh).
#
#   PROFILE=dev|release   cargo profile to build and test with (default dev)
#   PROPTEST_CASES=N      property-test cases (default 1000 locally, 128 under CI)
#   FUZZ_EXAMPLES=N       schemathesis cases per API operation and phase (default 20)
#   CARGO_TARGET_DIR      build cache, shared by every clone on this machine
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
PROFILE=${PROFILE:-dev}
if [ -n "${CI:-}" ]; then
  export PROPTEST_CASES=${PROPTEST_CASES:-128}
  # A failing case on a large generated cluster can take proptest many minutes to shrink;
  # CI reports it (with its seed, persisted beside the test) within a minute instead.
  export PROPTEST_MAX_SHRINK_TIME=${PROPTEST_MAX_SHRINK_TIME:-60000}
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (profile $PROFILE)"
cargo clippy --profile "$PROFILE" --workspace --all-targets --locked -- -D warnings
echo "== cargo deny (licenses, bans, sources; deny.toml says why not advisories)"
cargo deny check licenses bans sources
echo "== tests (profile $PROFILE, PROPTEST_CASES=${PROPTEST_CASES:-default})"
cargo nextest run --cargo-profile "$PROFILE" --workspace --locked --no-fail-fast
# The API against its own OpenAPI document, on a fresh cluster: about 15 s at 20 examples.
echo "== API fuzzing (schemathesis, FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-20})"
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-20} PROFILE=$PROFILE bash scripts/fuzz-api.sh
echo "== the demo (scripts/demo.sh, then scripts/demo.sh down)"
# Its own directories, so a developer's running demo or cluster is not touched; but the demo
# needs ports 7001-7003, so it refuses to run (and fails the run) if something listens there.
if curl -fsS -m 1 http://127.0.0.1:7001/healthz >/dev/null 2>&1; then
  echo "cannot run the demo: something already serves 127.0.0.1:7001 (try scripts/demo.sh down)" >&2
  exit 1
fi
demo_dir=$(mktemp -d)
export DROVER_DEMO_DIR=$demo_dir/demo DROVER_CLUSTER_DIR=$demo_dir/cluster
trap 'bash scripts/demo.sh down >/dev/null 2>&1 || true; rm -rf "$demo_dir"' EXIT
timeout 600 bash scripts/demo.sh
# README's tour and curl examples, as written, on the demo; they must leave nothing behind.
echo "== the README tour (scripts/readme_tour.py)"
timeout 600 python3 scripts/readme_tour.py
# The web console against the demo's cluster, in headless Chromium: it drains one more worker
# and cordons another from the page (screenshots under $UI_SHOTS, default a temporary dir).
echo "== the web console (scripts/ui-test.sh, headless Chromium)"
timeout 300 bash scripts/ui-test.sh http://127.0.0.1:7001 "${UI_SHOTS:-$demo_dir/ui}"
bash scripts/demo.sh down
