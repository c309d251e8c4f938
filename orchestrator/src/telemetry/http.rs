//! A small HTTP/1.1 server for the orchestrator's two endpoints: the embedded OTLP collector
//! (`POST /v1/traces`) and Prometheus' `GET /metrics`. Keep-alive, `Content-Length` and
//! chunked request bodies; responses always carry a `Content-Length`. Nothing more is needed
//! by OTLP exporters and scrapers, and it spares the orchestrator an HTTP framework.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest request body accepted (an OTLP batch of a few thousand spans is well below).
pub const MAX_BODY: usize = 64 << 20;
const MAX_HEAD: usize = 64 << 10;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: content_type.to_owned(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut b: String = body.into();
        if !b.ends_with('\n') {
            b.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", b)
    }
}

pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A running server; stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `bind` (e.g. `127.0.0.1:0`) and serves every request with `handler`.
    pub async fn start(bind: &str, handler: Handler) -> std::io::Result<Server> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((sock, _)) = accepted {
                            let _ = sock.set_nodelay(true);
                            conns.spawn(serve_conn(sock, handler.clone()));
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Server { addr, task })
    }

    pub fn stop(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn serve_conn(sock: tokio::net::TcpStream, handler: Handler) {
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let req = match read_request(&mut rd).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let _ = write_response(&mut wr, &Response::text(400, e), true).await;
                return;
            }
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = handler(req);
        if write_response(&mut wr, &resp, close).await.is_err() || close {
            return;
        }
    }
}

async fn write_response(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    r: &Response,
    close: bool,
) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    wr.write_all(head.as_bytes()).await?;
    wr.write_all(&r.body).await?;
    wr.flush().await
}

/// Reads one request; `Ok(None)` when the peer closed the connection between requests.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
) -> Result<Option<Request>, String> {
    let mut line = String::new();
    let mut head_len = 0;
    // Request line (tolerating empty lines before it).
    loop {
        line.clear();
        let n = rd
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        head_len += n;
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("bad request line {:?}", line.trim()));
    };
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = rd
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading headers: {e}"))?;
        head_len += n;
        if n == 0 || head_len > MAX_HEAD {
            return Err("truncated or oversized request head".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            line.clear();
            rd.read_line(&mut line)
                .await
                .map_err(|e| format!("reading a chunk: {e}"))?;
            let size_hex = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    line.clear();
                    let n = rd.read_line(&mut line).await.map_err(|e| e.to_string())?;
                    if n == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if req.body.len() + size > MAX_BODY {
                return Err(format!("body larger than {MAX_BODY} bytes"));
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            rd.read_exact(&mut req.body[start..])
                .await
                .map_err(|e| format!("reading a chunk: {e}"))?;
            line.clear();
            rd.read_line(&mut line).await.map_err(|e| e.to_string())?;
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if len > MAX_BODY {
            return Err(format!("body of {len} bytes is larger than {MAX_BODY}"));
        }
        req.body.resize(len, 0);
        rd.read_exact(&mut req.body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
    }
    Ok(Some(req))
}

/// A one-shot HTTP/1.1 client request (tests, `orchestrator` self-checks): returns the status
/// and body.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    let mut out = Vec::new();
    sock.read_to_end(&mut out).await?;
    let text_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&out[..text_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, out[text_end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_keep_alive_and_chunked_requests() {
        let handler: Handler = Arc::new(|r: Request| {
            Response::text(200, format!("{} {} {}", r.method, r.path, r.body.len()))
        });
        let server = Server::start("127.0.0.1:0", handler).await.unwrap();
        let addr = server.addr.to_string();
        let (status, body) = request(&addr, "POST", "/v1/traces?x=1", "a/b", b"hello")
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), "POST /v1/traces 5\n");

        // Two requests on one connection, the second chunked.
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("GET /metrics 0\n"), "{out}");
        assert!(out.contains("POST /c 5\n"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);
    }
}
