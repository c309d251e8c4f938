//! The control channel client: newline-delimited JSON to and from the orchestrator.
//!
//! A reader task parses lines as they arrive and answers `ping` itself, at once, with the
//! wall clock of the moment it read it (clock offset and liveness must not wait for the
//! node's event loop); everything else goes to the loop (`ControlRx::recv` is cancel-safe,
//! so it can be a `select!` branch). Writing goes through a small task so that a slow
//! orchestrator never stalls the swarm: `ControlTx::send` only queues the line.

use crate::clock::now_ns;
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
    rx: mpsc::UnboundedReceiver<Result<Incoming, ControlError>>,
    reader: JoinHandle<()>,
}

impl Drop for ControlRx {
    fn drop(&mut self) {
        self.reader.abort();
    }
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
    let tx = ControlTx::spawn(write);
    let rx = ControlRx::spawn(BufReader::new(read).lines(), &tx);
    Ok((rx, tx))
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
    /// Starts the reader task; pongs go out through `tx`'s writer. The reader holds the
    /// writer only weakly, so closing `tx` still ends the writer.
    fn spawn(mut lines: Lines<BufReader<BoxRead>>, tx: &ControlTx) -> Self {
        let (fwd, rx) = mpsc::unbounded_channel();
        let pong = tx.tx.downgrade();
        let reader = tokio::spawn(async move {
            loop {
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) => return, // dropping `fwd` ends the stream: Ok(None)
                    Err(e) => {
                        let _ = fwd.send(Err(e.into()));
                        return;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                match parse_line(&line) {
                    Incoming::Msg(OrchMsg::Ping { id }) => {
                        let at_ns = now_ns();
                        if let Some(w) = pong.upgrade() {
                            let _ = w.send(encode_line(&NodeMsg::Pong { id, at_ns }));
                        }
                    }
                    other => {
                        if fwd.send(Ok(other)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        ControlRx { rx, reader }
    }

    /// The next message; `Ok(None)` when the orchestrator closed the channel. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Incoming>, ControlError> {
        self.rx.recv().await.transpose()
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

    /// A ping is answered by the reader at once, without the event loop; other messages
    /// reach the loop in order; closing the sender still ends the writer.
    #[tokio::test]
    async fn pings_are_answered_by_the_reader() {
        let (orch, node) = tokio::io::duplex(4096);
        let (node_r, node_w) = tokio::io::split(node);
        let (orch_r, mut orch_w) = tokio::io::split(orch);
        let tx = ControlTx::spawn(Box::pin(node_w));
        let read: BoxRead = Box::pin(node_r);
        let mut rx = ControlRx::spawn(BufReader::new(read).lines(), &tx);
        orch_w
            .write_all(b"{\"type\":\"ping\",\"id\":7}\n\n{\"type\":\"abort\",\"reason\":\"x\"}\n")
            .await
            .unwrap();
        let mut from_node = BufReader::new(orch_r).lines();
        let line = from_node.next_line().await.unwrap().unwrap();
        match serde_json::from_str::<NodeMsg>(&line).unwrap() {
            NodeMsg::Pong { id: 7, at_ns } => assert!(at_ns > 1_600_000_000_000_000_000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rx.recv().await.unwrap(),
            Some(Incoming::Msg(OrchMsg::Abort { .. }))
        ));
        orch_w.shutdown().await.unwrap();
        assert!(rx.recv().await.unwrap().is_none());
        assert!(tx.close(Duration::from_secs(5)).await);
        assert!(from_node.next_line().await.unwrap().is_none());
    }

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
