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
mod fault;
mod first_hops;
mod lifecycle;
mod loop_lag;
mod mesh_wait;
mod metrics;
mod node;
mod per_second;
mod proc_stats;
mod publisher;
mod pubsub;
mod receiver;
mod security;
mod seen_set;
mod swarm;
mod telemetry;
mod wake_timer;

use std::io::Write;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Quiet by default; `RUST_LOG` (e.g. `debug`) for more. Gossipsub warns once per message it
/// cannot queue, printing the whole message: under backpressure that floods the log, and the
/// node counts those failures anyway (`router_failed_sends`).
const DEFAULT_LOG_FILTER: &str = "warn,libp2p_gossipsub::behaviour=error";

// One thread: hundreds of nodes share a couple of cores, and a node's work is one event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!(
            "pubsub-node {} ({})",
            env!("CARGO_PKG_VERSION"),
            node::IMPL_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let env = match config::EnvConfig::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("pubsub-node: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // One line per event on stderr, which the runner keeps as the node's log.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(Prefixed(format!("pubsub-node[{}]: ", env.index).leak()))
        .with_ansi(false)
        .init();
    if let Some(run) = &env.run_id {
        tracing::info!(run, "starting");
    }
    if env.clock_skew_ns != 0 {
        tracing::warn!(
            skew_ns = env.clock_skew_ns,
            "clock skewed on purpose (test aid)"
        );
        clock::set_skew(env.clock_skew_ns);
    }
    if let Some(fault) = env.fault {
        tracing::warn!(?fault, "a fault injected on purpose (test aid)");
    }
    ExitCode::from(node::run(env).await)
}

/// Stderr with a `pubsub-node[<index>]: ` prefix on every line, so lines from many nodes stay
/// attributable when logs are merged.
#[derive(Clone, Copy)]
struct Prefixed(&'static str);

impl<'a> MakeWriter<'a> for Prefixed {
    type Writer = PrefixedLine;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedLine {
            prefix: self.0,
            buf: Vec::new(),
        }
    }
}

/// One formatted event, written to stderr in a single call when dropped.
struct PrefixedLine {
    prefix: &'static str,
    buf: Vec<u8>,
}

impl Write for PrefixedLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(self.prefix.as_bytes());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PrefixedLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = std::io::stderr().lock().write_all(&self.buf);
        }
    }
}
