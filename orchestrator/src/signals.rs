//! The one SIGINT/SIGTERM handler of the orchestrator. The first signal asks the work under
//! way to stop and keep what it has (a run stops the fleet, collects and writes partial
//! results; a bench stops after saving; a Kubernetes run collects, then deletes what it
//! made); each further signal is counted for commands that have more to give up (a
//! Kubernetes run: skip collecting); past the last, the process exits at once with 130.

use crate::exit::EXIT_INTERRUPTED;
use tokio::sync::watch;

/// Becomes true on the first SIGINT or SIGTERM; the second exits at once.
pub fn stop_flag() -> watch::Receiver<bool> {
    let count =
        counter(&["interrupted: stopping the fleet and writing partial results (again to force)"]);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut count = count;
        if count.wait_for(|n| *n >= 1).await.is_ok() {
            let _ = tx.send(true);
        }
        // The sender lives as long as the process: a closed channel would wake every wait.
        std::future::pending::<()>().await;
        drop(tx);
    });
    rx
}

/// Counts SIGINT and SIGTERM. Signal `n` prints `notes[n - 1]` and sets the count to `n`;
/// the signal after the last note exits the process with 130.
pub fn counter(notes: &'static [&'static str]) -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0u32);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            // No handler (never on Linux): nothing will ever be counted.
            std::future::pending::<()>().await;
            return drop(tx);
        };
        let mut n = 0u32;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            n += 1;
            match notes.get(n as usize - 1) {
                Some(note) => eprintln!("{note}"),
                None => std::process::exit(i32::from(EXIT_INTERRUPTED)),
            }
            let _ = tx.send(n);
        }
    });
    rx
}
