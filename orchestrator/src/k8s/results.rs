//! The coordinator's results endpoint: a deliberately tiny HTTP/1.1 server (one request per
//! connection) that `orchestrator k8s run` reaches through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/coordinator:7001/proxy/…`), so no port-forward, exec or
//! WebSocket is needed, and a `kubectl` user can fetch the same with `kubectl get --raw`.
//!
//! - `GET /status`: `{"state":"running"}`, or `{"state":"done","exit_code":N,"dir":"plan/run-id"}`,
//!   or `{"state":"error","error":"…"}`;
//! - `GET /results.tar`: the results folder of the run as a tar archive (409 while running),
//!   streamed (chunked) as it is written, so neither side holds it whole in memory;
//! - `POST /abort?why=…`: ends the run as Ctrl-C would (partial results are still written);
//!   `why` says what the launcher saw, for the coordinator's own log.
//!
//! Every request counts as a sign of life from the launcher (see `--client-lease`).

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Size of the pieces the archive travels in (and the most either side buffers, times a few).
const CHUNK: usize = 64 << 10;

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
    /// When a request last came in (the launcher's sign of life).
    last_contact: Arc<Mutex<Instant>>,
    /// What the launcher said when it asked the run to stop.
    abort_reason: Arc<Mutex<Option<String>>>,
}

impl Shared {
    pub fn new(abort: watch::Sender<bool>) -> Self {
        Shared {
            state: Arc::new(Mutex::new((RunState::Running, None))),
            abort,
            last_contact: Arc::new(Mutex::new(Instant::now())),
            abort_reason: Arc::new(Mutex::new(None)),
        }
    }

    /// Time since the last request.
    pub fn since_contact(&self) -> std::time::Duration {
        self.last_contact.lock().expect("contact lock").elapsed()
    }

    /// Why the launcher stopped the run, if it did.
    pub fn abort_reason(&self) -> Option<String> {
        self.abort_reason.lock().expect("reason lock").clone()
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
    let Some((method, target)) = read_head(&mut stream).await? else {
        return respond(&mut stream, 400, "text/plain", b"bad request\n").await;
    };
    *shared.last_contact.lock().expect("contact lock") = Instant::now();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
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
            (_, Some(dir)) => stream_tar(&mut stream, dir).await,
        },
        ("POST", "/abort") => {
            let why = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("why="))
                .map(|w| w.replace(['+', '-'], " "));
            if let Some(w) = why {
                shared
                    .abort_reason
                    .lock()
                    .expect("reason lock")
                    .get_or_insert(w);
            }
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

/// `/results.tar`: the archive written straight into the response in chunks, by a blocking
/// task that hands each piece over a small channel (at most a few chunks in memory).
async fn stream_tar(stream: &mut TcpStream, dir: PathBuf) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-tar\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx));
        write_tar(&dir, &mut out)?;
        out.flush()
    });
    while let Some(chunk) = rx.recv().await {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        stream.write_all(&chunk).await?;
        stream.write_all(b"\r\n").await?;
    }
    match writer.await {
        // The last chunk: the reader knows the archive is complete.
        Ok(Ok(())) => stream.write_all(b"0\r\n\r\n").await?,
        // No last chunk: the reader sees a truncated body, not a short archive.
        Ok(Err(e)) => tracing::warn!("writing results.tar: {e}"),
        Err(e) => tracing::warn!("writing results.tar: {e}"),
    }
    stream.shutdown().await
}

/// A `Write` that sends what it is given over a channel (from a blocking task).
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` over chunks arriving on a channel (in a blocking task).
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => (self.buf, self.pos) = (b, 0),
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks a tar archive read from `body` into `dest` as it arrives (nothing held whole);
/// returns the bytes read.
pub async fn untar_stream<R>(mut body: R, dest: &Path) -> std::io::Result<u64>
where
    R: futures::AsyncRead + Unpin,
{
    use futures::AsyncReadExt as _;
    let (tx, rx) = mpsc::channel(4);
    let dest = dest.to_path_buf();
    let unpack = tokio::task::spawn_blocking(move || {
        untar_from(
            ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            },
            &dest,
        )
    });
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let read_error = loop {
        match body.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => {
                total += n as u64;
                if tx.send(Ok(buf[..n].to_vec())).await.is_err() {
                    break None; // the unpacker stopped: its error says why
                }
            }
            Err(e) => {
                let kind = e.kind();
                let _ = tx.send(Err(std::io::Error::new(kind, e.to_string()))).await;
                break Some(e);
            }
        }
    };
    drop(tx);
    let unpacked = unpack
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    match (read_error, unpacked) {
        (Some(e), _) => Err(e),
        (None, r) => r.map(|()| total),
    }
}

/// The regular files and folders below `dir` as a tar archive in memory (tests, small folders).
pub fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_tar(dir, &mut out)?;
    Ok(out)
}

/// Writes the regular files and folders below `dir` as a tar archive to `out` (paths relative
/// to `dir`, sorted, so the same folder gives the same archive; each file's own mtime and
/// mode). Sockets and the like are skipped.
pub fn write_tar<W: Write>(dir: &Path, out: W) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
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
    builder.into_inner()?.flush()
}

/// Unpacks a tar archive into `dest` (created if needed), keeping each file's mtime. Entries
/// that would land outside `dest` (absolute paths, `..`) are refused by the tar crate.
pub fn untar(bytes: &[u8], dest: &Path) -> std::io::Result<()> {
    untar_from(bytes, dest)
}

fn untar_from<R: Read>(reader: R, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(true);
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
        let body = out[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            (code, dechunk(&body))
        } else {
            (code, body)
        }
    }

    /// An HTTP/1.1 chunked body, decoded; panics unless it ends with the last chunk.
    fn dechunk(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
            body = &body[eol + 2..];
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&body[..size]);
            body = &body[size + 2..];
        }
    }

    #[tokio::test]
    async fn serves_status_results_and_abort() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("plan").join("r1");
        std::fs::create_dir_all(run.join("logs")).unwrap();
        std::fs::write(run.join("run.json"), b"{}").unwrap();
        std::fs::write(run.join("logs/node-0000.log"), b"hello\n").unwrap();
        // Larger than a few chunks, so the streaming is exercised.
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(run.join("big.bin"), &big).unwrap();
        let mtime = std::fs::metadata(run.join("run.json"))
            .unwrap()
            .modified()
            .unwrap();
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
        assert_eq!(
            request(addr, "POST", "/abort?why=a-node-pod-failed")
                .await
                .0,
            202
        );
        assert!(*abort_rx.borrow());
        assert_eq!(shared.abort_reason().as_deref(), Some("a node pod failed"));
        assert!(shared.since_contact() < std::time::Duration::from_secs(3600));

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
        assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
        // Each file keeps its own modification time.
        assert_eq!(
            std::fs::metadata(out.join("run.json"))
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            mtime
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        );
        // The streaming reader unpacks the same archive.
        let streamed = tmp.path().join("streamed");
        let n = untar_stream(futures::io::Cursor::new(tarball.clone()), &streamed)
            .await
            .unwrap();
        assert_eq!(n, tarball.len() as u64);
        assert_eq!(std::fs::read(streamed.join("big.bin")).unwrap(), big);
        // A truncated archive is an error, not a silently short folder.
        let cut = &tarball[..tarball.len() / 2];
        assert!(
            untar_stream(
                futures::io::Cursor::new(cut.to_vec()),
                &tmp.path().join("cut")
            )
            .await
            .is_err()
        );
        // Deterministic: the same folder gives the same bytes.
        assert_eq!(tar_dir(&run).unwrap(), tar_dir(&run).unwrap());
        server.abort();
    }
}
