//! `drover-chaos`: one fault-injection run against three `drover` nodes in a network namespace
//! of its own (root only). Prints the seed first and a report last; exits 0 when the run found
//! nothing wrong, 1 when it found violations, 2 when it could not run. `drover-chaos agent` is
//! one fleet worker, started by a run (`drover_chaos::agent_process`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use drover_chaos::{Fault, Liveness, Options, run, seed_from_env};

#[derive(Debug, Parser)]
#[command(
    name = "drover-chaos",
    about = "Partitions, crashes and pauses against a drover cluster and its agents; checks linearizability, durability, the lease and the SPEC §6 invariants",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// One fleet worker as a process (started by a run, inside its namespace): reports its
    /// lease as JSON lines on stdout, takes `drain` and `shutdown` on stdin.
    Agent(drover_chaos::agent_process::Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Seed of the fault schedule and the clients' choices (default: DROVER_CHAOS_SEED or random).
    #[arg(long)]
    seed: Option<u64>,
    /// Run for this many minutes of faults and load.
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Run for this many seconds of faults and load (default 60).
    #[arg(long)]
    seconds: Option<u64>,
    /// Comma-separated fault kinds (default all): on nodes isolate-leader, minority-partition,
    /// majorities-ring, flapping-link, kill-restart, kill-all, pause, delay, slow-raft; on
    /// agents pause-agent, cut-agent, restart-agent, duplicate-agent; `none` for none.
    #[arg(long)]
    faults: Option<String>,
    /// How long each fault is held, in milliseconds: MIN-MAX.
    #[arg(long, default_value = "2000-5000")]
    hold_ms: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Start the nodes with the deliberate stale-read bug (to see the checker catch it).
    #[arg(long)]
    unsafe_local_reads: bool,
    /// Start the nodes with the deliberate bug that the leader trusts its read lease past its
    /// followers'.
    #[arg(long)]
    unsafe_long_read_lease: bool,
    /// Start the nodes with the deliberate early-acknowledgement bug.
    #[arg(long)]
    unsafe_early_ack: bool,
    /// Start the nodes with the deliberate bug that any node acknowledges heartbeats locally.
    #[arg(long)]
    unsafe_local_heartbeats: bool,
    /// Start the nodes with the deliberate bug that a new process gets its lease at once.
    #[arg(long)]
    unsafe_no_lease_wait: bool,
    /// Agents' heartbeat interval (the cluster's initial setting; default 250).
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// A worker unheard this long is suspect (default 1500).
    #[arg(long)]
    suspect_after_ms: Option<u64>,
    /// A worker unheard this long is declared dead (default 3500).
    #[arg(long)]
    dead_after_ms: Option<u64>,
    /// Agents give their lease up this long before they could be declared dead (default 1000;
    /// below half of dead-after).
    #[arg(long)]
    lease_margin_ms: Option<u64>,
    /// No deaths: the liveness settings of the older runs (heartbeat 1 s, suspect 3 s, dead
    /// after a day, margin 3 s); the flags above still override them.
    #[arg(long)]
    no_deaths: bool,
    /// Start the nodes with `--max-deaths-fraction 1`: the mass-failure brake never holds a
    /// death back.
    #[arg(long)]
    no_brake: bool,
    /// The drover binary (default: beside this one).
    #[arg(long)]
    drover: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the nemesis' actions as they happen.
    #[arg(long, short)]
    verbose: bool,
    /// Every link over TLS (a throwaway CA, client-certificate peers).
    #[arg(long)]
    tls: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Some(Sub::Agent(a)) = cli.command {
        std::process::exit(drover_chaos::agent_process::main(a));
    }
    let args = cli.run;
    let drover = args.drover.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.with_file_name("drover")
    });
    let seed = args.seed.unwrap_or_else(seed_from_env);
    let secs = args.minutes.map(|m| m * 60).or(args.seconds).unwrap_or(60);
    let mut opts = Options::new(drover, seed, Duration::from_secs(secs));
    opts.clients = args.clients.max(1);
    let hold = args
        .hold_ms
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .filter(|(a, b): &(u64, u64)| a <= b);
    match hold {
        Some(h) => opts.hold_ms = h,
        None => {
            eprintln!("drover-chaos: --hold-ms {:?} is not MIN-MAX", args.hold_ms);
            std::process::exit(2);
        }
    }
    opts.unsafe_local_reads = args.unsafe_local_reads;
    opts.unsafe_early_ack = args.unsafe_early_ack;
    opts.unsafe_long_read_lease = args.unsafe_long_read_lease;
    opts.unsafe_local_heartbeats = args.unsafe_local_heartbeats;
    opts.unsafe_no_lease_wait = args.unsafe_no_lease_wait;
    opts.brake = !args.no_brake;
    let mut l = if args.no_deaths {
        Liveness::NO_DEATHS
    } else {
        Liveness::DEATHS
    };
    l.heartbeat_interval_ms = args
        .heartbeat_interval_ms
        .unwrap_or(l.heartbeat_interval_ms);
    l.suspect_after_ms = args.suspect_after_ms.unwrap_or(l.suspect_after_ms);
    l.dead_after_ms = args.dead_after_ms.unwrap_or(l.dead_after_ms);
    l.lease_margin_ms = args.lease_margin_ms.unwrap_or(l.lease_margin_ms);
    if let Err(e) = l.validate() {
        eprintln!("drover-chaos: {e}");
        std::process::exit(2);
    }
    opts.liveness = l;
    // The agents run this binary's `agent` subcommand.
    if let Ok(exe) = std::env::current_exe() {
        opts.agent_bin = exe;
    }
    opts.verbose = args.verbose;
    opts.tls = args.tls;
    if let Some(f) = &args.faults {
        let mut kinds = Vec::new();
        for name in f
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "none")
        {
            match Fault::parse(name) {
                Some(k) => kinds.push(k),
                None => {
                    eprintln!("drover-chaos: unknown fault kind {name:?}");
                    std::process::exit(2);
                }
            }
        }
        opts.faults = kinds;
    }
    drover_client::outln!(
        "drover-chaos: seed {seed} (replay with --seed {seed} or DROVER_CHAOS_SEED={seed}), {secs}s"
    );
    match run(&opts) {
        Ok(report) => {
            print!("{}", report.summary());
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("drover-chaos: cannot write {}: {e}", path.display());
                }
            }
            std::process::exit(if report.clean() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("drover-chaos: the run failed: {e:#}");
            std::process::exit(2);
        }
    }
}
