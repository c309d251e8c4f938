//! Measuring the emulated network from the outside, with real tools and real kernels: `ping`
//! (iputils) for RTT, a TCP bulk transfer (our own sender/receiver, or `iperf3`) for
//! throughput, counted UDP datagrams for loss, and a UDP flood for the shaper's packet rate.
//! Used by the `netsim-probe` binary and by the tests.

use crate::core::Action;
use crate::{Netsim, NetsimConfig, NetsimError, NetsimStats, NodeNet};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testbed_contract::plan::{LinkOverride, LinkProfile, Network};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netsim(#[from] NetsimError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("`{tool}`: {message}")]
    Tool { tool: &'static str, message: String },
}

fn tool_err(tool: &'static str, message: impl Into<String>) -> ProbeError {
    ProbeError::Tool {
        tool,
        message: message.into(),
    }
}

/// Two nodes, `a` (node 0) and `b` (node 1), in groups `a` and `b`, with the shaper between.
pub struct Pair {
    pub sim: Netsim,
    pub a: NodeNet,
    pub b: NodeNet,
}

/// Shaper settings the probe's pairs use (defaults: [`NetsimConfig::new`]'s).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub spin: Duration,
    pub spin_budget: f64,
    pub realtime: bool,
    /// Run the measuring side (ping, iperf3, our TCP/UDP threads, not the flood senders) at a
    /// real-time priority below the shaper's, so other work on the machine does not distort
    /// what is measured.
    pub rt_tools: bool,
}

fn rt_tools() -> bool {
    TUNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|t| t.rt_tools)
}

const TOOL_PRIORITY: libc::c_int = 5;

fn set_policy(policy: libc::c_int, priority: libc::c_int) {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 = the calling thread; valid param pointer.
    unsafe { libc::sched_setscheduler(0, policy, &param) };
}

/// Gives the calling thread the tools' real-time priority while it lives (if enabled).
struct RtGuard(bool);

impl RtGuard {
    fn new() -> RtGuard {
        let on = rt_tools();
        if on {
            set_policy(libc::SCHED_FIFO, TOOL_PRIORITY);
        }
        RtGuard(on)
    }
}

impl Drop for RtGuard {
    fn drop(&mut self) {
        if self.0 {
            set_policy(libc::SCHED_OTHER, 0);
        }
    }
}

/// Starts `cmd` in `node`'s namespace, at the tools' priority if enabled.
fn tool_command(node: &NodeNet, cmd: &mut Command) {
    node.configure(cmd);
    if rt_tools() {
        use std::os::unix::process::CommandExt;
        // SAFETY: only a system call in the child.
        unsafe {
            cmd.pre_exec(|| {
                set_policy(libc::SCHED_FIFO, TOOL_PRIORITY);
                Ok(())
            })
        };
    }
}

static TUNING: std::sync::Mutex<Option<Tuning>> = std::sync::Mutex::new(None);

/// Sets the shaper settings of every [`Pair`] started afterwards in this process.
pub fn set_tuning(t: Tuning) {
    *TUNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
}

impl Pair {
    pub fn start(network: Network, seed: u64) -> Result<Pair, ProbeError> {
        let mut config = NetsimConfig::new(network, vec!["a".into(), "b".into()], seed);
        if let Some(t) = *TUNING.lock().unwrap_or_else(|e| e.into_inner()) {
            config.spin = t.spin;
            config.spin_budget = t.spin_budget;
            config.realtime = t.realtime;
        }
        let sim = Netsim::start(config)?;
        let a = sim.add_node(0, "a")?;
        let b = sim.add_node(1, "b")?;
        Ok(Pair { sim, a, b })
    }

    /// Changes the profile of both directions now.
    pub fn set_profile(&self, a_to_b: LinkProfile, b_to_a: LinkProfile) -> Result<(), ProbeError> {
        self.sim.apply(Action::SetLink {
            directions: vec![(0, 1)],
            patch: a_to_b,
        })?;
        self.sim.apply(Action::SetLink {
            directions: vec![(1, 0)],
            patch: b_to_a,
        })?;
        Ok(())
    }

    pub fn stop(self) -> Result<NetsimStats, ProbeError> {
        Ok(self.sim.stop()?)
    }
}

/// A network of groups `a` and `b` with one profile per direction.
pub fn pair_network(a_to_b: &LinkProfile, b_to_a: &LinkProfile) -> Network {
    let link = |from: &str, to: &str, p: &LinkProfile| LinkOverride {
        from: from.into(),
        to: to.into(),
        symmetric: false,
        latency: p.latency,
        jitter: p.jitter,
        jitter_distribution: p.jitter_distribution,
        loss: p.loss,
        loss_correlation: p.loss_correlation,
        bandwidth: p.bandwidth,
        queue: p.queue,
        reorder: p.reorder,
    };
    Network {
        links: vec![link("a", "b", a_to_b), link("b", "a", b_to_a)],
        ..Network::default()
    }
}

/// What `ping -q` reports.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PingStats {
    pub transmitted: u32,
    pub received: u32,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub mdev_ms: f64,
}

impl PingStats {
    pub fn loss(&self) -> f64 {
        if self.transmitted == 0 {
            0.0
        } else {
            1.0 - self.received as f64 / self.transmitted as f64
        }
    }

    fn parse(out: &str) -> Option<PingStats> {
        let mut s = PingStats::default();
        for line in out.lines() {
            if line.contains("packets transmitted") {
                let mut nums = line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|x| !x.is_empty());
                s.transmitted = nums.next()?.parse().ok()?;
                s.received = nums.next()?.parse().ok()?;
            }
            if let Some(rest) = line.split(" = ").nth(1)
                && line.starts_with("rtt")
            {
                // "40.152/40.274/40.461/0.102 ms" (iputils may append ", pipe 2").
                let v: Vec<f64> = rest
                    .split(" ms")
                    .next()
                    .unwrap_or_default()
                    .split('/')
                    .filter_map(|x| x.trim().parse().ok())
                    .collect();
                if let [min, avg, max, mdev] = v[..] {
                    (s.min_ms, s.avg_ms, s.max_ms, s.mdev_ms) = (min, avg, max, mdev);
                }
            }
        }
        (s.transmitted > 0).then_some(s)
    }
}

/// Runs iputils `ping` inside `from`'s namespace.
pub fn ping(
    from: &NodeNet,
    to: Ipv4Addr,
    count: u32,
    interval: Duration,
) -> Result<PingStats, ProbeError> {
    let mut cmd = Command::new("ping");
    cmd.args(["-n", "-q", "-c", &count.to_string(), "-W", "5"])
        .arg("-i")
        .arg(format!("{:.3}", interval.as_secs_f64()))
        .arg(to.to_string())
        .stdin(Stdio::null());
    tool_command(from, &mut cmd);
    let out = cmd.output().map_err(|e| {
        tool_err(
            "ping",
            format!("cannot run it ({e}); install iputils-ping (apt-get install -y iputils-ping)"),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    tracing::debug!(output = %text, "ping");
    PingStats::parse(&text).ok_or_else(|| {
        tool_err(
            "ping",
            format!(
                "unexpected output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
}

/// Throughput of one TCP connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TcpResult {
    /// Bytes the receiver counted in the measured window (after the warm-up).
    pub bytes: u64,
    pub seconds: f64,
    /// Application bytes per second × 8.
    pub goodput_bps: f64,
    /// Longest pause between two reads at the receiver in the measured window, and when it
    /// started (seconds after the window began).
    pub longest_gap: (Duration, f64),
    /// Bytes received in each 100 ms of the whole transfer (warm-up included).
    pub per_100ms: Vec<u64>,
    /// The sender's view over the measured window (`tcp_info`), when known: which part of the
    /// time it was limited by the receiver's window or its own send buffer rather than by the
    /// network.
    pub sender: Option<TcpSenderInfo>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TcpSenderInfo {
    pub busy_ms: f64,
    pub rwnd_limited_ms: f64,
    pub sndbuf_limited_ms: f64,
    pub retransmits: u32,
    pub cwnd: u32,
    pub srtt_ms: f64,
}

/// Chooses the sender's congestion control (`cubic`, `bbr`, `reno`: what the kernel offers).
fn set_congestion(s: &TcpStream, name: &str) -> Result<(), ProbeError> {
    use std::os::fd::AsRawFd;
    // SAFETY: TCP_CONGESTION takes a byte string and its length.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(tool_err(
            "tcp",
            format!(
                "congestion control `{name}` refused ({}); see net.ipv4.tcp_available_congestion_control",
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

fn tcp_info(s: &TcpStream) -> Option<libc::tcp_info> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data; getsockopt fills at most `len` bytes of it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (r == 0).then_some(info)
    }
}

fn sender_info(a: &libc::tcp_info, b: &libc::tcp_info) -> TcpSenderInfo {
    let ms = |x: u64, y: u64| y.saturating_sub(x) as f64 / 1e3;
    TcpSenderInfo {
        busy_ms: ms(a.tcpi_busy_time, b.tcpi_busy_time),
        rwnd_limited_ms: ms(a.tcpi_rwnd_limited, b.tcpi_rwnd_limited),
        sndbuf_limited_ms: ms(a.tcpi_sndbuf_limited, b.tcpi_sndbuf_limited),
        retransmits: b.tcpi_total_retrans.saturating_sub(a.tcpi_total_retrans),
        cwnd: b.tcpi_snd_cwnd,
        srtt_ms: b.tcpi_rtt as f64 / 1e3,
    }
}

/// A TCP bulk transfer from `from` to `to` for `duration`, measured at the receiver after
/// `warmup` (slow start excluded). Sender and receiver are threads of this process whose
/// sockets live in the two namespaces: real kernel TCP (cubic) on both ends.
pub fn tcp_bulk(
    from: &NodeNet,
    to: &NodeNet,
    duration: Duration,
    warmup: Duration,
    congestion: Option<&str>,
) -> Result<TcpResult, ProbeError> {
    let port = 5_301;
    let listener =
        to.run_in(move || TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)))??;
    let dst = SocketAddrV4::new(to.addr(), port);
    let stream =
        from.run_in(move || TcpStream::connect_timeout(&dst.into(), Duration::from_secs(10)))??;
    let (mut rx, _) = listener.accept()?;
    if let Some(cc) = congestion {
        set_congestion(&stream, cc)?;
    }
    let watch = stream.try_clone()?;
    let mut info_start = None;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        let mut stream = stream;
        std::thread::spawn(move || {
            let _rt = RtGuard::new();
            let buf = vec![0x5au8; 128 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&buf).is_err() {
                    break;
                }
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        })
    };
    rx.set_read_timeout(Some(Duration::from_millis(200)))?;
    let rt = RtGuard::new();
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut counted = 0u64;
    let mut window_start: Option<Instant> = None;
    let mut last = start;
    let mut longest_gap = (Duration::ZERO, 0.0);
    let mut per_100ms = Vec::new();
    while start.elapsed() < duration {
        match rx.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let now = Instant::now();
                if let Some(w) = window_start
                    && now - last > longest_gap.0
                {
                    longest_gap = (now - last, (last - w).as_secs_f64());
                }
                last = now;
                let slot = (now - start).as_millis() as usize / 100;
                if per_100ms.len() <= slot {
                    per_100ms.resize(slot + 1, 0);
                }
                per_100ms[slot] += n as u64;
                if start.elapsed() >= warmup {
                    if window_start.is_none() {
                        window_start = Some(last);
                        info_start = tcp_info(&watch);
                    } else {
                        counted += n as u64;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(rt);
    let sender_info = info_start
        .zip(tcp_info(&watch))
        .map(|(a, b)| sender_info(&a, &b));
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = sender.join();
    let seconds = window_start.map_or(0.0, |w| (last - w).as_secs_f64());
    Ok(TcpResult {
        bytes: counted,
        seconds,
        goodput_bps: if seconds > 0.0 {
            counted as f64 * 8.0 / seconds
        } else {
            0.0
        },
        sender: sender_info,
        longest_gap,
        per_100ms,
    })
}

/// The same with `iperf3` (server in `to`, client in `from`, first `warmup` omitted).
pub fn iperf3(
    from: &NodeNet,
    to: &NodeNet,
    duration: Duration,
    warmup: Duration,
    congestion: Option<&str>,
) -> Result<TcpResult, ProbeError> {
    let mut server = Command::new("iperf3");
    server
        .args(["-s", "-1", "-B", &to.addr().to_string(), "-p", "5302"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    tool_command(to, &mut server);
    let mut server = server.spawn().map_err(|e| {
        tool_err(
            "iperf3",
            format!("cannot run it ({e}); install iperf3 (apt-get install -y iperf3)"),
        )
    })?;
    let mut out = None;
    for _ in 0..50 {
        let mut client = Command::new("iperf3");
        client
            .args(["-c", &to.addr().to_string(), "-p", "5302", "-J"])
            .arg("-t")
            .arg(duration.as_secs().max(1).to_string())
            .arg("-O")
            .arg(warmup.as_secs().to_string());
        if let Some(cc) = congestion {
            client.arg("-C").arg(cc);
        }
        tool_command(from, &mut client);
        let o = client.output()?;
        if o.status.success() {
            out = Some(o);
            break;
        }
        // The server may not listen yet.
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    let out = out.ok_or_else(|| tool_err("iperf3", "the client never connected"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| tool_err("iperf3", format!("unreadable JSON: {e}")))?;
    let r = &v["end"]["sum_received"];
    let bps = r["bits_per_second"]
        .as_f64()
        .ok_or_else(|| tool_err("iperf3", "no sum_received"))?;
    Ok(TcpResult {
        sender: None,
        longest_gap: (Duration::ZERO, 0.0),
        per_100ms: Vec::new(),
        bytes: r["bytes"].as_u64().unwrap_or(0),
        seconds: r["seconds"].as_f64().unwrap_or(0.0),
        goodput_bps: bps,
    })
}

/// UDP datagrams sent one way and counted at the receiver.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct UdpCount {
    pub sent: u64,
    pub received: u64,
}

impl UdpCount {
    pub fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
}

fn set_rcvbuf(s: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Sends `count` datagrams of `size` bytes from `from` to `to`, one every `interval`, and
/// counts what arrives (waiting `settle` after the last one).
pub fn udp_count(
    from: &NodeNet,
    to: &NodeNet,
    count: u64,
    size: usize,
    interval: Duration,
    settle: Duration,
) -> Result<UdpCount, ProbeError> {
    let port = 5_303;
    let rx =
        to.run_in(move || UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)))??;
    // A large receive buffer, so a busy machine does not drop datagrams the shaper delivered.
    set_rcvbuf(&rx, 16 << 20);
    let tx = from.run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))??;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, done) = (Arc::clone(&received), Arc::clone(&done));
        rx.set_read_timeout(Some(Duration::from_millis(50)))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Count until the sender is done *and* the socket is empty: a counter that fell
            // behind on a busy machine still counts what is queued.
            loop {
                match rx.recv(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        })
    };
    let dst = SocketAddrV4::new(to.addr(), port);
    let payload = vec![0u8; size];
    let start = Instant::now();
    for i in 0..count {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tx.send_to(&payload, dst)?;
    }
    std::thread::sleep(settle);
    done.store(true, Ordering::Relaxed);
    let _ = counter.join();
    Ok(UdpCount {
        sent: count,
        received: received.load(Ordering::Relaxed),
    })
}

/// The shaper's packet rate under a UDP flood from `a` to `b`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PpsResult {
    pub seconds: f64,
    pub sent: u64,
    /// Packets the shaper wrote per second of wall time.
    pub forwarded_pps: f64,
    /// Share of one core the shaper thread used.
    pub shaper_cpu_share: f64,
    /// Packets per second of shaper CPU time (spinning excluded): the rate one core sustains.
    pub pps_per_core: f64,
    pub stats: NetsimStats,
}

/// Floods `b` from `a` with `size`-byte UDP datagrams for `duration` (through a fresh pair
/// with `profile` both ways).
pub fn pps(
    profile: &LinkProfile,
    size: usize,
    duration: Duration,
    senders: usize,
) -> Result<PpsResult, ProbeError> {
    let pair = Pair::start(pair_network(profile, profile), 1)?;
    let port = 5_304;
    let sink = pair
        .b
        .run_in(move || UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)))??;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let dst = SocketAddrV4::new(pair.b.addr(), port);
    let before = pair.sim.stats()?;
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..senders {
        let tx = pair
            .a
            .run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))??;
        let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let payload = vec![0u8; size];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    if tx.send_to(&payload, dst).is_ok() {
                        n += 1;
                    }
                }
            }
            sent.fetch_add(n, Ordering::Relaxed);
        }));
    }
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let seconds = t0.elapsed().as_secs_f64();
    drop(sink);
    let stats = pair.stop()?;
    let written = stats.written - before.written;
    Ok(PpsResult {
        seconds,
        sent: sent.load(Ordering::Relaxed),
        forwarded_pps: written as f64 / seconds,
        shaper_cpu_share: stats.cpu_share(),
        pps_per_core: if stats.cpu_ns > stats.spin_ns {
            stats.written as f64 / ((stats.cpu_ns - stats.spin_ns) as f64 / 1e9)
        } else {
            0.0
        },
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iputils_ping_output() {
        let out = "PING 10.77.0.2 (10.77.0.2) 56(84) bytes of data.\n\n--- 10.77.0.2 ping statistics ---\n20 packets transmitted, 19 received, 5% packet loss, time 3805ms\nrtt min/avg/max/mdev = 40.081/40.127/40.219/0.034 ms, pipe 2\n";
        let s = PingStats::parse(out).unwrap();
        assert_eq!((s.transmitted, s.received), (20, 19));
        assert_eq!(
            (s.min_ms, s.avg_ms, s.max_ms, s.mdev_ms),
            (40.081, 40.127, 40.219, 0.034)
        );
        assert!((s.loss() - 0.05).abs() < 1e-9);
        let lost = "3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n";
        assert_eq!(PingStats::parse(lost).unwrap().received, 0);
        assert!(PingStats::parse("ping: connect: Network is unreachable").is_none());
    }
}
