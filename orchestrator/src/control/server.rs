//! Accepts node connections on TCP (127.0.0.1) and on a Unix socket (for nodes in other
//! network namespaces, so control traffic never crosses an emulated link), frames
//! newline-delimited JSON, and turns everything into [`ControlEvent`]s on one channel.
//! A malformed line is an event, never a crash: the fleet logic decides what it means.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use testbed_contract::protocol::{NodeMsg, OrchMsg, encode_line};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

/// Largest line accepted from a node (a final result of a big run is a few MB).
const MAX_LINE: usize = 256 << 20;

pub type ConnId = u64;

#[derive(Debug)]
pub enum ControlEvent {
    Opened {
        conn: ConnId,
        sender: mpsc::UnboundedSender<OrchMsg>,
    },
    Message {
        conn: ConnId,
        msg: NodeMsg,
    },
    Malformed {
        conn: ConnId,
        error: String,
        excerpt: String,
    },
    Closed {
        conn: ConnId,
    },
}

/// Where nodes reach the control server.
#[derive(Debug, Clone)]
pub struct ControlEndpoints {
    /// `tcp://127.0.0.1:PORT`
    pub tcp: String,
    /// `unix:/path`
    pub unix: Option<String>,
}

pub struct ControlServer {
    pub endpoints: ControlEndpoints,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    unix_path: Option<PathBuf>,
}

impl ControlServer {
    /// Binds TCP on `tcp_bind` (e.g. `127.0.0.1:0`) and, if given, a Unix socket at `unix_path`.
    pub async fn start(
        tcp_bind: &str,
        unix_path: Option<&Path>,
        events: mpsc::UnboundedSender<ControlEvent>,
    ) -> std::io::Result<ControlServer> {
        let next = Arc::new(AtomicU64::new(1));
        let tcp = TcpListener::bind(tcp_bind).await?;
        let tcp_addr = tcp.local_addr()?;
        let mut tasks = Vec::new();
        {
            let events = events.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = tcp.accept().await {
                    let _ = stream.set_nodelay(true);
                    let (r, w) = stream.into_split();
                    spawn_conn(next.fetch_add(1, Ordering::Relaxed), r, w, events.clone());
                }
            }));
        }
        let mut unix = None;
        if let Some(path) = unix_path {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)?;
            unix = Some(format!("unix:{}", path.display()));
            let events = events.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (r, w) = stream.into_split();
                    spawn_conn(next.fetch_add(1, Ordering::Relaxed), r, w, events.clone());
                }
            }));
        }
        Ok(ControlServer {
            endpoints: ControlEndpoints {
                tcp: format!("tcp://{tcp_addr}"),
                unix,
            },
            tasks,
            unix_path: unix_path.map(Path::to_path_buf),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn spawn_conn<R, W>(
    conn: ConnId,
    reader: R,
    mut writer: W,
    events: mpsc::UnboundedSender<ControlEvent>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<OrchMsg>();
    if events
        .send(ControlEvent::Opened { conn, sender: tx })
        .is_err()
    {
        return;
    }
    // Writer: its own task, so a slow node never blocks reading from it.
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if writer.write_all(&encode_line(&msg)).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 << 10, reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match read_line_limited(&mut reader, &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let event = match serde_json::from_slice::<NodeMsg>(trimmed) {
                Ok(msg) => ControlEvent::Message { conn, msg },
                Err(e) => ControlEvent::Malformed {
                    conn,
                    error: e.to_string(),
                    excerpt: String::from_utf8_lossy(&trimmed[..trimmed.len().min(200)])
                        .into_owned(),
                },
            };
            if events.send(event).is_err() {
                return;
            }
        }
        let _ = events.send(ControlEvent::Closed { conn });
    });
}

async fn read_line_limited<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        let (done, used) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (true, i + 1),
            None => (false, buf.len()),
        };
        out.extend_from_slice(&buf[..used]);
        r.consume(used);
        if done {
            return Ok(out.len());
        }
        if out.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "control line too long",
            ));
        }
    }
}

/// Senders by connection, for the fleet to address nodes.
pub type Senders = HashMap<ConnId, mpsc::UnboundedSender<OrchMsg>>;
