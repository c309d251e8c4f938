//! Network emulation for the `netns` runner: per-link latency, jitter, loss, bandwidth and
//! partitions, in both directions, between nodes that each live in their own network namespace.
//!
//! - [`core`]: the scheduling core. Pure, no I/O, no clock, deterministic from the plan's seed.
//! - [`Netsim`]: the TUN edge. One thread holds one TUN device per node namespace, reads each
//!   IPv4 packet, asks the core, writes it to the destination's TUN at its release time.
//! - [`NodeNet`]: a node's namespace and address; spawn the node's process into it.
//!
//! ```no_run
//! # fn main() -> Result<(), netsim::NetsimError> {
//! use netsim::{Netsim, NetsimConfig};
//! let network: testbed_contract::plan::Network = Default::default();
//! Netsim::preflight()?; // clear error when not root or no /dev/net/tun
//! let sim = Netsim::start(NetsimConfig::new(network, vec!["a".into(), "b".into()], 1))?;
//! let n0 = sim.add_node(0, "a")?;
//! let mut cmd = std::process::Command::new("pubsub-node");
//! cmd.env("TESTBED_LISTEN_IP", n0.addr().to_string());
//! n0.configure(&mut cmd); // setns into the node namespace + die with the parent
//! let mut child = cmd.spawn()?;
//! sim.start_events()?; // time zero of the plan's network events
//! // … run …
//! child.kill()?;
//! child.wait()?;
//! let stats = sim.stop()?;
//! # let _ = stats; Ok(()) }
//! ```

pub mod core;
mod edge;
mod error;
mod netns;
pub mod probe;
mod sys;

pub use edge::{Lateness, Netsim, NetsimConfig, NetsimStats};
pub use error::NetsimError;
pub use netns::{Addressing, NodeNet, TUN_NAME, TunSettings};

/// Inodes of every network namespace some process on this machine is in or holds open
/// (`/proc/*/ns/net` and `/proc/*/fd/*` links to `net:[N]`), to check that nothing is left.
pub fn live_netns_inodes() -> std::collections::BTreeSet<u64> {
    let mut out = std::collections::BTreeSet::new();
    let parse = |p: std::path::PathBuf| -> Option<u64> {
        let t = std::fs::read_link(p).ok()?;
        let t = t.to_str()?;
        t.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let path = p.path();
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Some(i) = parse(path.join("ns/net")) {
            out.insert(i);
        }
        if let Ok(tasks) = std::fs::read_dir(path.join("task")) {
            for t in tasks.flatten() {
                if let Some(i) = parse(t.path().join("ns/net")) {
                    out.insert(i);
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(path.join("fd")) {
            for f in fds.flatten() {
                if let Some(i) = parse(f.path()) {
                    out.insert(i);
                }
            }
        }
    }
    out
}
