//! The control channel client: newline-delimited JSON to and from the orchestrator.
//!
//! Reading stays in the node's event loop (`ControlRx::recv` is cancel-safe, so it can be a
//! `select!` branch). Writing goes through a small task so that a slow orchestrator never
//! stalls the swarm: `ControlTx::send` only queues the line.

use crate::config::ControlAddr;
use std::pin::Pin;
use std::time::Duration;
use testbed_contract::protocol::{NodeMsg, OrchMsg, encode_line};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the orchestrator at {addr} (tried for {secs} s): {source}")]
    Connect {
        addr: String,
        secs: u64,
        source: std::io::Error,
    },
    #[error("control channel read failed: {0}")]
    Read(#[from] std::io::Error),
}

/// A line from the orchestrator.
#[derive(Debug)]
pub enum Incoming {
    Msg(OrchMsg),
    /// Not a message this node understands. `command_id` is set when it looked like a command,
    /// so the node can refuse it with an ack instead of leaving the orchestrator waiting.
    Unknown {
        error: String,
        command_id: Option<u64>,
    },
}

pub struct ControlRx {
    lines: Lines<BufReader<BoxRead>>,
}

pub struct ControlTx {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Connects, retrying for up to `retry_for` (the orchestrator may still be binding its socket
/// when a runner starts the nodes).
pub async fn connect(
    addr: &ControlAddr,
    retry_for: Duration,
) -> Result<(ControlRx, ControlTx), ControlError> {
    let deadline = tokio::time::Instant::now() + retry_for;
    let (read, write) = loop {
        match open(addr).await {
            Ok(halves) => break halves,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, error = %e, "control channel not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(ControlError::Connect {
                    addr: addr.to_string(),
                    secs: retry_for.as_secs(),
                    source,
                });
            }
        }
    };
    Ok((
        ControlRx {
            lines: BufReader::new(read).lines(),
        },
        ControlTx::spawn(write),
    ))
}

async fn open(addr: &ControlAddr) -> std::io::Result<(BoxRead, BoxWrite)> {
    match addr {
        ControlAddr::Tcp(hostport) => {
            let s = tokio::net::TcpStream::connect(hostport.as_str()).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::pin(r), Box::pin(w)))
        }
        ControlAddr::Unix(path) => {
            let s = tokio::net::UnixStream::connect(path).await?;
            let (r, w) = s.into_split();
            Ok((Box::pin(r), Box::pin(w)))
        }
    }
}

async fn write_lines(
    mut w: BoxWrite,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(line) = rx.recv().await {
        w.write_all(&line).await?;
    }
    // All senders gone: the node is done talking. Flush and half-close so the orchestrator
    // sees a clean end of stream after the result.
    w.flush().await?;
    w.shutdown().await
}

impl ControlRx {
    /// The next message; `Ok(None)` when the orchestrator closed the channel. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, ControlError> {
        loop {
            let Some(line) = self.lines.next_line().await? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(parse_line(&line)));
        }
    }
}

fn parse_line(line: &str) -> Incoming {
    match serde_json::from_str::<OrchMsg>(line) {
        Ok(msg) => Incoming::Msg(msg),
        Err(e) => {
            let value: Option<serde_json::Value> = serde_json::from_str(line).ok();
            let command_id = value
                .as_ref()
                .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("command"))
                .and_then(|v| v.get("id"))
                .and_then(|id| id.as_u64());
            Incoming::Unknown {
                error: e.to_string(),
                command_id,
            }
        }
    }
}

impl ControlTx {
    /// Starts the writer task for `w` (on the current runtime).
    fn spawn(w: BoxWrite) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_lines(w, rx));
        ControlTx { tx, task }
    }

    /// A sender writing into any stream, for tests of what the node says.
    #[cfg(test)]
    pub fn for_test(w: impl AsyncWrite + Send + 'static) -> Self {
        Self::spawn(Box::pin(w))
    }

    /// Queues a message; false when the channel is gone.
    pub fn send(&self, msg: &NodeMsg) -> bool {
        self.tx.send(encode_line(msg)).is_ok()
    }

    /// Flushes what was queued and closes the write side, waiting at most `timeout`.
    pub async fn close(self, timeout: Duration) -> bool {
        let ControlTx { tx, task } = self;
        drop(tx);
        matches!(tokio::time::timeout(timeout, task).await, Ok(Ok(Ok(()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_commands_keep_their_id() {
        match parse_line(r#"{"type":"command","id":9,"cmd":{"op":"dance"}}"#) {
            Incoming::Unknown { command_id, .. } => assert_eq!(command_id, Some(9)),
            other => panic!("{other:?}"),
        }
        match parse_line("not json") {
            Incoming::Unknown { command_id, .. } => assert_eq!(command_id, None),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line(r#"{"type":"abort","reason":"x"}"#),
            Incoming::Msg(OrchMsg::Abort { .. })
        ));
    }
}
