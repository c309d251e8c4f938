//! A test double for the node contract: it runs a real node program behind a relay on the
//! control channel and breaks the contract in one chosen way, so that tests can check that
//! the orchestrator and `orchestrator conformance` name the fault. Everything else passes
//! through unchanged (the hello's `pid` is rewritten to the double's own, which is the
//! process the orchestrator started).
//!
//! Environment, beside the node's own (docs/node-contract.md §1):
//!   DOUBLE_NODE_BIN     the real node program (e.g. target/release/pubsub-node); required
//!   DOUBLE_FAULT        none | result-missing-field | bad-histogram | malformed-state
//!                       - result-missing-field: the final result lacks `received`
//!                       - bad-histogram: the result's latency histograms are not HDR
//!                       - malformed-state: right after `listening`, a `state` message with
//!                         a state that does not exist
//!                       - swallow-ack:<op>:<n>: the ack of the n-th command `<op>` (1-based,
//!                         e.g. `swallow-ack:subscribe:2`) never reaches the orchestrator,
//!                         so the node looks hung there while it still serves the channel
//!   DOUBLE_FAULT_INDEX  only the node with this index misbehaves (default: every node)
//!
//!   cargo build --release -p orchestrator --example node-double
//!   DOUBLE_NODE_BIN=target/release/pubsub-node DOUBLE_FAULT=result-missing-field \
//!     target/release/orchestrator conformance --impl rust --program target/release/examples/node-double

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

trait Stream: std::io::Read + Write + Send {
    fn shutdown_write(&self);
    fn split(&self) -> Box<dyn Stream>;
}

impl Stream for std::net::TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn split(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().expect("clone a TCP stream"))
    }
}

impl Stream for std::os::unix::net::UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn split(&self) -> Box<dyn Stream> {
        Box::new(self.try_clone().expect("clone a Unix stream"))
    }
}

fn connect(addr: &str) -> std::io::Result<Box<dyn Stream>> {
    if let Some(a) = addr.strip_prefix("tcp://") {
        let s = std::net::TcpStream::connect(a)?;
        s.set_nodelay(true)?;
        Ok(Box::new(s))
    } else if let Some(p) = addr.strip_prefix("unix:") {
        let p = p.strip_prefix("//").unwrap_or(p);
        Ok(Box::new(std::os::unix::net::UnixStream::connect(p)?))
    } else {
        Err(std::io::Error::other(format!(
            "{addr}: expected tcp://HOST:PORT or unix:/PATH"
        )))
    }
}

fn main() -> ExitCode {
    let Some(node_bin) = std::env::var_os("DOUBLE_NODE_BIN") else {
        eprintln!("node-double: DOUBLE_NODE_BIN (the real node program) is not set");
        return ExitCode::from(2);
    };
    let fault = std::env::var("DOUBLE_FAULT").unwrap_or_else(|_| "none".into());
    let control = std::env::var("TESTBED_CONTROL_ADDR").ok();
    let index: Option<u32> = std::env::var("TESTBED_NODE_INDEX")
        .ok()
        .and_then(|v| v.parse().ok());
    let (Some(control), Some(index)) = (control, index) else {
        // Nothing to relay: the real node reports its incomplete environment itself.
        let err = Command::new(&node_bin).exec();
        eprintln!(
            "node-double: cannot run {}: {err}",
            node_bin.to_string_lossy()
        );
        return ExitCode::from(2);
    };
    let faulty = std::env::var("DOUBLE_FAULT_INDEX")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_none_or(|i| i == index);
    let fault = if faulty { fault } else { "none".into() };

    let upstream = match connect(&control) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("node-double[{index}]: cannot reach the orchestrator at {control}: {e}");
            return ExitCode::from(3);
        }
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a relay listener");
    let port = listener.local_addr().expect("its address").port();
    // SAFETY: installing a handler that only stores into an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mut cmd = Command::new(&node_bin);
    cmd.env("TESTBED_CONTROL_ADDR", format!("tcp://127.0.0.1:{port}"))
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "node-double[{index}]: cannot start {}: {e}",
                node_bin.to_string_lossy()
            );
            return ExitCode::from(1);
        }
    };
    listener.set_nonblocking(true).expect("nonblocking accept");
    let node = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    return exit_like(status);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                eprintln!("node-double[{index}]: accept: {e}");
                let _ = child.kill();
                return ExitCode::from(1);
            }
        }
    };
    node.set_nonblocking(false).expect("blocking relay");
    let _ = node.set_nodelay(true);

    // Orchestrator → node: verbatim, noting the ids of commands whose ack is to be dropped.
    let swallowed = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (up_r, mut node_w) = (upstream.split(), node.split());
    let swallow = fault
        .strip_prefix("swallow-ack:")
        .and_then(|x| x.split_once(':'))
        .map(|(op, n)| (op.to_string(), n.parse::<u32>().unwrap_or(1)));
    let noted = swallowed.clone();
    std::thread::spawn(move || {
        let mut seen = 0;
        for line in BufReader::new(up_r).lines() {
            let Ok(line) = line else { break };
            if let Some((op, n)) = &swallow
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["type"] == "command"
                && v["cmd"]["op"] == op.as_str()
            {
                seen += 1;
                if seen == *n
                    && let Some(id) = v["id"].as_u64()
                {
                    noted.lock().unwrap().insert(id);
                }
            }
            if node_w
                .write_all(line.as_bytes())
                .and_then(|_| node_w.write_all(b"\n"))
                .is_err()
            {
                break;
            }
        }
        node_w.shutdown_write();
    });
    // Node → orchestrator: with the fault.
    let (node_r, mut up_w) = (node.split(), upstream.split());
    let pid = std::process::id();
    let relay = std::thread::spawn(move || {
        for line in BufReader::new(node_r).lines() {
            let Ok(line) = line else { break };
            if kind(&line) == "ack"
                && serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                    .is_some_and(|id| swallowed.lock().unwrap().contains(&id))
            {
                continue;
            }
            let mut out = vec![rewrite(&line, &fault, pid)];
            if fault == "malformed-state" && kind(&line) == "listening" {
                out.push(r#"{"type":"state","state":"flying","at_ns":1}"#.to_string());
            }
            for l in out {
                if up_w
                    .write_all(l.as_bytes())
                    .and_then(|_| up_w.write_all(b"\n"))
                    .is_err()
                {
                    return;
                }
            }
        }
        up_w.shutdown_write();
    });

    let status = loop {
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: kill(2) of our own child.
            unsafe {
                libc::kill(child.id() as i32, sig);
            }
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return ExitCode::from(1),
        }
    };
    let until = Instant::now() + Duration::from_secs(2);
    while !relay.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    exit_like(status)
}

fn exit_like(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(s)) => ExitCode::from(128 + s as u8),
        _ => ExitCode::from(1),
    }
}

fn kind(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn rewrite(line: &str, fault: &str, pid: u32) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    let Some(obj) = v.as_object_mut() else {
        return line.to_string();
    };
    match obj.get("type").and_then(|t| t.as_str()) {
        Some("hello") => {
            obj.insert("pid".into(), pid.into());
        }
        Some("result") if fault == "result-missing-field" => {
            obj.remove("received");
        }
        Some("result") if fault == "bad-histogram" => {
            if let Some(list) = obj.get_mut("latency").and_then(|l| l.as_array_mut()) {
                for l in list {
                    l["hdr"] = "bm90IGEgaGlzdG9ncmFt".into(); // base64 of "not a histogram"
                }
            }
        }
        _ => return line.to_string(),
    }
    serde_json::to_string(&v).unwrap_or_else(|_| line.to_string())
}
