#!/usr/bin/env bash
# A longer fault-injection soak than the test suite's: three drover nodes in a network namespace
# of their own, partitioned, killed, paused and delayed while clients write, read and change
# workers, and five agent processes are paused, cut off, killed and duplicated; workers are
# declared dead under the faults (dead after 3.5 s by default). Then linearizability, lost
# writes, the SPEC §6 invariants, the lease (no death before the lease ran out, no two processes
# leased as one worker, no replica on a dead worker) and replica agreement are checked. Needs
# root (network namespaces, nftables).
#
#   scripts/chaos.sh --minutes 30              a 30-minute soak with a fresh seed, every fault
#   scripts/chaos.sh --minutes 5 --seed 42     replay seed 42's fault schedule
#   scripts/chaos.sh --seconds 60 --faults isolate-leader,pause-agent,duplicate-agent --verbose
#   scripts/chaos.sh --minutes 10 --dead-after-ms 4000 --heartbeat-interval-ms 300
#   scripts/chaos.sh --minutes 10 --no-deaths  the older runs: dead after a day, no deaths
#   scripts/chaos.sh --seconds 30 --unsafe-local-reads        see the checker catch a planted bug
#   scripts/chaos.sh --seconds 30 --unsafe-local-heartbeats   ... a lease the cluster breaks
#   scripts/chaos.sh --seconds 30 --unsafe-no-lease-wait --faults duplicate-agent   ... two leases
#
# Fault kinds (--faults, comma-separated; default all): isolate-leader, minority-partition,
# majorities-ring, flapping-link, kill-restart, kill-all, pause, delay, slow-raft (Raft delayed
# by up to half of dead-after); on agents pause-agent, cut-agent, restart-agent, duplicate-agent.
# Liveness: --heartbeat-interval-ms, --suspect-after-ms, --dead-after-ms, --lease-margin-ms.
#
# Every other flag goes to drover-chaos (--help lists them). It prints the seed first and the
# report last, exits 0 when the run found nothing, 1 when it found violations, 2 when it could
# not run; node data, logs and every key's history are kept (path in the report) when it found
# something, with every agent process's lease reports and the deaths. DROVER_CHAOS_SEED also sets
# the seed. PROFILE picks the cargo profile (default dev).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}
PROFILE=${PROFILE:-dev}
case "$PROFILE" in dev) OUT=debug ;; *) OUT=$PROFILE ;; esac
PROFILE=$PROFILE bash scripts/build.sh
# A private copy of both binaries: the target directory is shared by every clone on the
# machine, and a concurrent build must not swap the server out from under a long soak.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cp "$CARGO_TARGET_DIR/$OUT/drover" "$CARGO_TARGET_DIR/$OUT/drover-chaos" "$bin/"
"$bin/drover-chaos" --drover "$bin/drover" "$@"
