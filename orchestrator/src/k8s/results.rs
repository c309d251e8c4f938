//! The coordinator's results endpoint: a deliberately tiny HTTP/1.1 server (one request per
//! connection) that `orchestrator k8s run` reaches through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/coordinator:7001/proxy/…`), so no port-forward, exec or
//! WebSocket is needed, and a `kubectl` user can fetch the same with `kubectl get --raw`.
//!
//! - `GET /status`: `{"state":"running"}`, or `{"state":"done","exit_code":N,"dir":"plan/run-id"}`,
//!   or `{"state":"error","error":"…"}`;
//! - `GET /results.tar`: the results folder of the run as a tar archive (409 while running);
//! - `POST /abort`: ends the run as Ctrl-C would (partial results are still written).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What `/status` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done {
        exit_code: i32,
        /// The results folder, relative to the results root (`plan/run-id`).
        dir: String,
    },
    Error {
        error: String,
    },
}

/// Shared between the run and the server.
#[derive(Clone)]
pub struct Shared {
    state: Arc<Mutex<(RunState, Option<PathBuf>)>>,
    abort: watch::Sender<bool>,
}

impl Shared {
    pub fn new(abort: watch::Sender<bool>) -> Self {
        Shared {
            state: Arc::new(Mutex::new((RunState::Running, None))),
            abort,
        }
    }

    /// The run ended: `/status` reports it and `/results.tar` serves `dir`.
    pub fn finish(&self, state: RunState, dir: Option<PathBuf>) {
        *self.state.lock().expect("state lock") = (state, dir);
    }

    pub fn state(&self) -> RunState {
        self.state.lock().expect("state lock").0.clone()
    }

    fn dir(&self) -> Option<PathBuf> {
        self.state.lock().expect("state lock").1.clone()
    }
}

/// Serves until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, shared: Shared) {
    while let Ok((stream, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = handle(stream, &shared).await;
        });
    }
}

async fn handle(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let Some((method, path)) = read_head(&mut stream).await? else {
        return respond(&mut stream, 400, "text/plain", b"bad request\n").await;
    };
    let path = path.split('?').next().unwrap_or_default();
    match (method.as_str(), path) {
        ("GET", "/status") => {
            let body = serde_json::to_vec(&shared.state()).unwrap_or_default();
            respond(&mut stream, 200, "application/json", &body).await
        }
        ("GET", "/results.tar") => match (shared.state(), shared.dir()) {
            (RunState::Running, _) => {
                respond(&mut stream, 409, "text/plain", b"the run is still going\n").await
            }
            (_, None) => {
                respond(
                    &mut stream,
                    404,
                    "text/plain",
                    b"the run wrote no results folder\n",
                )
                .await
            }
            (_, Some(dir)) => match tokio::task::spawn_blocking(move || tar_dir(&dir)).await {
                Ok(Ok(bytes)) => respond(&mut stream, 200, "application/x-tar", &bytes).await,
                Ok(Err(e)) => {
                    respond(&mut stream, 500, "text/plain", format!("{e}\n").as_bytes()).await
                }
                Err(e) => {
                    respond(&mut stream, 500, "text/plain", format!("{e}\n").as_bytes()).await
                }
            },
        },
        ("POST", "/abort") => {
            let _ = shared.abort.send(true);
            respond(&mut stream, 202, "text/plain", b"aborting\n").await
        }
        _ => {
            respond(
                &mut stream,
                404,
                "text/plain",
                b"not found: GET /status, GET /results.tar, POST /abort\n",
            )
            .await
        }
    }
}

/// Reads the request head (the body, if any, is ignored); `None` if it is not HTTP.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 << 10 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/") => {
            Ok(Some((m.to_string(), p.to_string())))
        }
        _ => Ok(None),
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// The regular files and folders below `dir` as a tar archive (paths relative to `dir`,
/// sorted, so the same folder gives the same archive). Sockets and the like are skipped.
pub fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(dir.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let kind = e.file_type()?;
            let rel_path = rel.join(e.file_name());
            if kind.is_dir() {
                builder.append_dir(&rel_path, e.path())?;
                stack.push(rel_path);
            } else if kind.is_file() {
                builder.append_path_with_name(e.path(), &rel_path)?;
            }
        }
    }
    builder.into_inner()
}

/// Unpacks a tar archive into `dest` (created if needed). Entries that would land outside
/// `dest` (absolute paths, `..`) are refused by the tar crate.
pub fn untar(bytes: &[u8], dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(bytes);
    archive.set_preserve_permissions(false);
    archive.unpack(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out[split + 4..].to_vec())
    }

    #[tokio::test]
    async fn serves_status_results_and_abort() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("plan").join("r1");
        std::fs::create_dir_all(run.join("logs")).unwrap();
        std::fs::write(run.join("run.json"), b"{}").unwrap();
        std::fs::write(run.join("logs/node-0000.log"), b"hello\n").unwrap();
        // A socket in the folder (the control socket) must not break the archive.
        let _sock = std::os::unix::net::UnixListener::bind(run.join("control.sock")).unwrap();

        let (abort_tx, abort_rx) = watch::channel(false);
        let shared = Shared::new(abort_tx);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, shared.clone()));

        let (code, body) = request(addr, "GET", "/status").await;
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_slice::<RunState>(&body).unwrap(),
            RunState::Running
        );
        assert_eq!(request(addr, "GET", "/results.tar").await.0, 409);
        assert_eq!(request(addr, "GET", "/nope").await.0, 404);
        assert_eq!(request(addr, "POST", "/abort").await.0, 202);
        assert!(*abort_rx.borrow());

        shared.finish(
            RunState::Done {
                exit_code: 2,
                dir: "plan/r1".into(),
            },
            Some(run.clone()),
        );
        let (code, body) = request(addr, "GET", "/status").await;
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_slice::<RunState>(&body).unwrap(),
            RunState::Done {
                exit_code: 2,
                dir: "plan/r1".into()
            }
        );
        let (code, tarball) = request(addr, "GET", "/results.tar").await;
        assert_eq!(code, 200);
        let out = tmp.path().join("fetched");
        untar(&tarball, &out).unwrap();
        assert_eq!(std::fs::read(out.join("run.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(out.join("logs/node-0000.log")).unwrap(),
            b"hello\n"
        );
        assert!(!out.join("control.sock").exists());
        // Deterministic: the same folder gives the same bytes.
        assert_eq!(tar_dir(&run).unwrap(), tar_dir(&run).unwrap());
        server.abort();
    }
}
