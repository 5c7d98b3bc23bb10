//! `drover-chaos`: one fault-injection run against three `drover` nodes in a network namespace
//! of its own (root only). Prints the seed first and a report last; exits 0 when the run found
//! nothing wrong, 1 when it found violations, 2 when it could not run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use drover_chaos::{Fault, Options, run, seed_from_env};

#[derive(Debug, Parser)]
#[command(
    name = "drover-chaos",
    about = "Partitions, crashes and pauses against a drover cluster; checks linearizability, durability and the SPEC §6 invariants"
)]
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
    /// Comma-separated fault kinds (default all): isolate-leader, minority-partition,
    /// majorities-ring, flapping-link, kill-restart, kill-all, pause, delay; `none` for none.
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
    /// Start the nodes with the deliberate early-acknowledgement bug.
    #[arg(long)]
    unsafe_early_ack: bool,
    /// The drover binary (default: beside this one).
    #[arg(long)]
    drover: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the nemesis' actions as they happen.
    #[arg(long, short)]
    verbose: bool,
}

fn main() {
    let args = Args::parse();
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
    opts.verbose = args.verbose;
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
