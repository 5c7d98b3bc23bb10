#!/usr/bin/env bash
# Builds every binary and example of the workspace, for one cargo profile, as ONE feature set.
#
#   bash scripts/build.sh            PROFILE=dev (default) or PROFILE=release
#
# Every script builds through this file, and the test run (`cargo nextest run --workspace`,
# `cargo clippy --workspace --all-targets`) resolves the same features: cargo unifies features
# over the packages it is asked to build, so `-p drover-server --bin drover` and `--workspace`
# give dependencies (libc, bindgen, ...) different feature sets — and librocksdb-sys a different
# build hash, which recompiles RocksDB's C++ (15 minutes on two cores). Building the whole
# workspace with its examples (which pulls in the dev-dependencies, as tests do) keeps one hash
# per profile on a machine, whichever script runs first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
PROFILE=${PROFILE:-dev}
cargo build --profile "$PROFILE" --locked --workspace --bins --examples
