#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Drover. Idempotent: a second
# run installs nothing and takes a second.
set -euo pipefail

need_apt=()
# rocksdb's bindgen needs libclang; its C++ build needs a compiler (cc/c++ from build-essential).
# The cluster and demo scripts use curl and python3 (JSON checks). The fault-injection harness
# (crates/chaos) makes network namespaces (iproute2) and cuts links in them (nftables).
# protoc: the etcd client drover-bench compares against is generated from its protobufs.
# chromium and chromium-driver: the web console's browser test (scripts/ui-test.sh).
for pkg in libclang-dev clang build-essential curl python3 iproute2 nftables protobuf-compiler \
  chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done

if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
# Licenses, duplicate versions and sources of every dependency (deny.toml); about 3 minutes to
# build once.
cargo deny --version >/dev/null 2>&1 || cargo install --locked cargo-deny
