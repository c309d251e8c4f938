//! Serving the orchestrator's HTTP endpoints (the embedded OTLP collector, `/metrics`): an
//! axum [`Router`] on a TCP address and, optionally, on a Unix socket (nodes in other network
//! namespaces reach the collector through the filesystem). Plus [`request`], a one-shot
//! client for tests.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::serve::ListenerExt;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;

/// Largest request body accepted (an OTLP batch of a few thousand spans is well below).
pub const MAX_BODY: usize = 64 << 20;

/// A running server; stops accepting when dropped (requests in flight are answered).
pub struct Server {
    pub addr: SocketAddr,
    unix_path: Option<PathBuf>,
    /// Dropping it is the shutdown signal of every listener.
    _stop: watch::Sender<()>,
}

impl Server {
    /// Binds `bind` (e.g. `127.0.0.1:0`) and, if given, a Unix socket at `unix_path` (an old
    /// socket file there is replaced), and serves `router` on both.
    pub async fn start(
        bind: &str,
        unix_path: Option<&Path>,
        router: Router,
    ) -> std::io::Result<Server> {
        let tcp = TcpListener::bind(bind).await?;
        let addr = tcp.local_addr()?;
        let unix = match unix_path {
            Some(p) => {
                let _ = std::fs::remove_file(p);
                Some(UnixListener::bind(p)?)
            }
            None => None,
        };
        let (stop, stopped) = watch::channel(());
        // Small request/response exchanges: don't let Nagle hold back a response's tail.
        let tcp = tcp.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        spawn_serve(tcp, router.clone(), stopped.clone());
        if let Some(l) = unix {
            spawn_serve(l, router, stopped);
        }
        Ok(Server {
            addr,
            unix_path: unix_path.map(Path::to_path_buf),
            _stop: stop,
        })
    }

    /// `unix:/path` of the Unix socket, if there is one.
    pub fn unix_endpoint(&self) -> Option<String> {
        self.unix_path
            .as_ref()
            .map(|p| format!("unix:{}", p.display()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn spawn_serve<L>(listener: L, router: Router, mut stopped: watch::Receiver<()>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        // The sender is never written to: `changed` returns when it is dropped.
        let signal = async move {
            let _ = stopped.changed().await;
        };
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await;
    });
}

/// A one-shot HTTP/1.1 request to `addr` (`HOST:PORT`, or `unix:/path`): returns the status
/// and body.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    match addr.strip_prefix("unix:") {
        Some(p) => {
            let io = UnixStream::connect(p).await?;
            send(io, "localhost", method, path, content_type, body).await
        }
        None => {
            let io = TcpStream::connect(addr).await?;
            send(io, addr, method, path, content_type, body).await
        }
    }
}

async fn send<IO>(
    io: IO,
    host: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .map_err(std::io::Error::other)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), usize::MAX)
        .await
        .map_err(std::io::Error::other)?;
    drop(sender);
    let _ = conn.await;
    Ok((status, bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn echo() -> Router {
        Router::new().fallback(|req: Request<Body>| async move {
            let (parts, body) = req.into_parts();
            let n = axum::body::to_bytes(body, MAX_BODY).await.unwrap().len();
            format!("{} {} {n}\n", parts.method, parts.uri.path())
        })
    }

    #[tokio::test]
    async fn serves_keep_alive_and_chunked_requests_on_tcp_and_unix() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("s.sock");
        let server = Server::start("127.0.0.1:0", Some(sock_path.as_path()), echo())
            .await
            .unwrap();
        let addr = server.addr.to_string();
        let (status, body) = request(&addr, "POST", "/v1/traces?x=1", "a/b", b"hello")
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), "POST /v1/traces 5\n");
        let unix = server.unix_endpoint().unwrap();
        let (status, body) = request(&unix, "POST", "/u", "a/b", b"abc").await.unwrap();
        assert_eq!((status, body.as_slice()), (200, b"POST /u 3\n".as_slice()));

        // Two requests on one connection, the second chunked.
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("GET /metrics 0\n"), "{out}");
        assert!(out.contains("POST /c 5\n"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);

        drop(server);
        assert!(!sock_path.exists(), "the socket file goes with the server");
    }
}
