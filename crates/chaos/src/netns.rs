//! The network namespace a chaos run lives in, and the nftables rules that cut links in it.
//!
//! The harness creates a namespace of its own (`ip netns add`), brings its loopback up, and
//! runs every node, client and agent process inside it: node `i` listens on 127.0.0.(10+i) and
//! sources its outgoing connections from there, the clients and agents use 127.0.0.1. Links are
//! cut by dropping packets between two node addresses in an `output` chain of the namespace's
//! own nftables; an agent process is cut off by the uid it runs as (each one switches to a uid
//! of its own at start, [`crate::agent_process`]): `meta skuid U drop`, or `meta skuid U ip daddr
//! != N drop` to leave it one node. Nothing on the host's network is touched. The namespace is deleted, and every process left in
//! it killed, when the [`Netns`] is dropped — on success, failure or panic — and namespaces left
//! by a harness that was killed outright are swept at the next start.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Prefix of every namespace a harness creates: `drover-chaos-<pid>-<n>`.
const PREFIX: &str = "drover-chaos-";

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace owned by this process.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// Every drop rule in force; each change rewrites the chain from it. Held across the `nft`
    /// run (a short blocking call, never an `.await`), so two changes never interleave.
    rules: std::sync::Mutex<Rules>,
}

#[derive(Debug, Default)]
struct Rules {
    /// (a, b): packets from node address a to node address b are dropped.
    cuts: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    /// uid → the one node address it may still reach (`None`: none).
    blocked: BTreeMap<u32, Option<Ipv4Addr>>,
}

impl Rules {
    fn script(&self) -> String {
        let mut script = format!("flush chain inet {TABLE} out\n");
        for (a, b) in &self.cuts {
            script.push_str(&format!(
                "add rule inet {TABLE} out ip saddr {a} ip daddr {b} drop\n"
            ));
        }
        for (uid, except) in &self.blocked {
            match except {
                Some(n) => script.push_str(&format!(
                    "add rule inet {TABLE} out meta skuid {uid} ip daddr != {n} drop\n"
                )),
                None => script.push_str(&format!(
                    "add rule inet {TABLE} out meta skuid {uid} drop\n"
                )),
            }
        }
        script
    }
}

impl Netns {
    /// Creates a namespace with its loopback up. Fails with a clear message without root.
    pub fn create() -> Result<Netns> {
        sweep_stale();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name])).context(
            "the chaos harness needs root (CAP_SYS_ADMIN) and iproute2 to create a network \
             namespace; run it as root (scripts/setup.sh installs iproute2 and nftables)",
        )?;
        let ns = Netns {
            name,
            rules: std::sync::Mutex::default(),
        };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        ns.nft(&format!(
            "add table inet {TABLE}\n\
             add chain inet {TABLE} out {{ type filter hook output priority 0; policy accept; }}\n"
        ))
        .context("cannot set up nftables in the namespace (is the nftables package installed?)")?;
        Ok(ns)
    }

    /// Moves the calling thread into the namespace. Threads and processes it starts afterwards
    /// are inside too.
    pub fn enter(&self) -> Result<()> {
        let f = File::open(format!("/run/netns/{}", self.name))
            .with_context(|| format!("cannot open namespace {}", self.name))?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("setns into {}", self.name))?;
        Ok(())
    }

    /// Runs an nftables script inside the namespace.
    pub fn nft(&self, script: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nft")?;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft failed: {}\n{script}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Replaces the link cuts with exactly `cuts`: each (a, b) drops packets from a to b.
    /// Agent blocks stay as they are.
    pub fn set_cuts(&self, cuts: &BTreeSet<(Ipv4Addr, Ipv4Addr)>) -> Result<()> {
        self.change(|r| r.cuts = cuts.clone())
    }

    /// Drops every packet that processes of `uid` send, except to `except` when given.
    pub fn block_uid(&self, uid: u32, except: Option<Ipv4Addr>) -> Result<()> {
        self.change(|r| {
            r.blocked.insert(uid, except);
        })
    }

    pub fn unblock_uid(&self, uid: u32) -> Result<()> {
        self.change(|r| {
            r.blocked.remove(&uid);
        })
    }

    pub fn unblock_all_uids(&self) -> Result<()> {
        self.change(|r| r.blocked.clear())
    }

    fn change(&self, f: impl FnOnce(&mut Rules)) -> Result<()> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rules);
        self.nft(&rules.script())
    }
}

const TABLE: &str = "drover_chaos";

/// Kills every process in namespace `name`, then deletes it.
fn destroy(name: &str) {
    if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", name])) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = run(Command::new("ip").args(["netns", "del", name]));
}

/// Deletes namespaces of harnesses that no longer run (killed before they could clean up).
fn sweep_stale() {
    let Ok(list) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            eprintln!("drover-chaos: removing namespace {name} left by a harness that died");
            destroy(name);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}
