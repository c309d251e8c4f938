//! `pubsub-node`: one libp2p pubsub peer of a pubsub-testbed fleet. It reads who it is from
//! the environment (see `testbed_contract::env`), connects to the orchestrator's control
//! channel, and does what it is told until `finish`. Exit codes: see `exit.rs`.

mod ack;
mod barrier;
mod clock;
mod config;
mod control;
mod dialer;
mod exit;
mod lifecycle;
mod mesh_wait;
mod metrics;
mod node;
mod proc_stats;
mod publisher;
mod pubsub;
mod receiver;
mod seen_set;
mod swarm;

use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

// One thread: hundreds of nodes share a couple of cores, and a node's work is one event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Quiet by default (`warn`); RUST_LOG=debug etc. for more. The runner captures stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let env = match config::EnvConfig::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("pubsub-node: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(run) = &env.run_id {
        tracing::info!(run, index = env.index, "starting");
    }
    ExitCode::from(node::run(env).await)
}
