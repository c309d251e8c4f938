//! netsim-probe: two network namespaces with the shaper between them, measured with real tools.
//!
//!   netsim-probe rtt --latency 20ms            # ping RTT (iputils ping)
//!   netsim-probe tcp --bandwidth 10Mbit        # TCP bulk transfer goodput
//!   netsim-probe loss --loss 5                 # counted UDP drops
//!   netsim-probe pps                           # shaper packet rate on one core
//!   netsim-probe bench [--out FILE]            # the whole accuracy table, as markdown
//!
//! `NETSIM_PROBE_SERIES=1 netsim-probe tcp …` also prints the bytes received per 100 ms (how
//! BBR's PROBE_RTT dip every 10 s was found).
//!
//! Needs root and /dev/net/tun (it says so otherwise). Leaves nothing behind: the namespaces
//! exist only as long as this process.

use clap::{Parser, Subcommand};
use netsim::probe::{self, Pair, ProbeError};
use netsim::{Netsim, NetsimConfig};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;
use testbed_contract::duration::parse as parse_duration;
use testbed_contract::plan::{Bandwidth, JitterDistribution, LinkProfile, Network, Percent};

#[derive(Parser)]
#[command(
    name = "netsim-probe",
    about = "Measure the user-space network shaper between two namespaces"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Shaper: wake this early and spin until a release time (0 disables).
    #[arg(long, global = true, value_parser = parse_duration, default_value = "60us")]
    spin: Duration,
    /// Shaper: most of a core spinning may take.
    #[arg(long, global = true, default_value_t = 0.1)]
    spin_budget: f64,
    /// Shaper: run without real-time priority.
    #[arg(long, global = true)]
    no_realtime: bool,
    /// Run the measuring tools (ping, iperf3, TCP threads) at normal priority instead of a
    /// real-time one below the shaper's: then other load on the machine shows in the figures.
    #[arg(long, global = true)]
    no_rt_tools: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ping RTT through the shaper with a one-way latency (both directions).
    Rtt {
        #[arg(long, value_parser = parse_duration, default_value = "20ms")]
        latency: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        jitter: Duration,
        #[arg(long, default_value = "uniform")]
        distribution: String,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long, value_parser = parse_duration, default_value = "20ms")]
        interval: Duration,
    },
    /// TCP bulk transfer a → b through a bandwidth limit.
    Tcp {
        #[arg(long, default_value = "10Mbit", value_parser = Bandwidth::parse)]
        bandwidth: Bandwidth,
        #[arg(long, value_parser = parse_duration, default_value = "10ms")]
        latency: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        duration: Duration,
        /// `own` (threads of this process, kernel TCP) or `iperf3`.
        #[arg(long, default_value = "own")]
        tool: String,
        /// Sender congestion control (`cubic`, `bbr`, …); default: the system's.
        #[arg(long)]
        cc: Option<String>,
    },
    /// Loss a → b (percent), counted with UDP datagrams.
    Loss {
        #[arg(long, default_value_t = 5.0)]
        loss: f64,
        #[arg(long, default_value_t = 0.0)]
        correlation: f64,
        #[arg(long, default_value_t = 20_000)]
        count: u64,
    },
    /// Packets per second the shaper forwards (UDP flood a → b).
    Pps {
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        duration: Duration,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        latency: Duration,
        #[arg(long, default_value_t = 1)]
        senders: usize,
    },
    /// Every measurement of the accuracy table, as markdown.
    Bench {
        /// Fewer samples and shorter transfers.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Time to create N node namespaces (each with a `sleep` inside) and to tear them down.
    Scale {
        #[arg(long, default_value_t = 300)]
        nodes: u32,
    },
    /// (for tests) Create N node namespaces with a `sleep` in each, print what was made as JSON,
    /// and wait to be killed.
    #[command(hide = true)]
    Hold {
        #[arg(long, default_value_t = 2)]
        nodes: u32,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = Netsim::preflight() {
        eprintln!("netsim-probe: {e}");
        return ExitCode::from(2);
    }
    probe::set_tuning(probe::Tuning {
        spin: cli.spin,
        spin_budget: cli.spin_budget,
        realtime: !cli.no_realtime,
        rt_tools: !cli.no_rt_tools,
    });
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netsim-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dist(s: &str) -> Result<JitterDistribution, ProbeError> {
    match s {
        "uniform" => Ok(JitterDistribution::Uniform),
        "normal" => Ok(JitterDistribution::Normal),
        "pareto" => Ok(JitterDistribution::Pareto),
        _ => Err(ProbeError::Tool {
            tool: "netsim-probe",
            message: format!("unknown distribution `{s}` (uniform, normal, pareto)"),
        }),
    }
}

fn profile(latency: Duration) -> LinkProfile {
    LinkProfile {
        latency: Some(latency),
        ..Default::default()
    }
}

fn run(cmd: Cmd) -> Result<(), ProbeError> {
    match cmd {
        Cmd::Rtt {
            latency,
            jitter,
            distribution,
            count,
            interval,
        } => {
            let p = LinkProfile {
                jitter: Some(jitter),
                jitter_distribution: Some(dist(&distribution)?),
                ..profile(latency)
            };
            let pair = Pair::start(probe::pair_network(&p, &p), 1)?;
            let s = probe::ping(&pair.a, pair.b.addr(), count, interval)?;
            let stats = pair.stop()?;
            println!(
                "configured one-way {} (RTT {}): ping {}/{} min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms; shaper lateness mean {} µs, max {} µs",
                humantime::format_duration(latency),
                humantime::format_duration(latency * 2),
                s.received,
                s.transmitted,
                s.min_ms,
                s.avg_ms,
                s.max_ms,
                s.mdev_ms,
                stats.lateness.mean_ns / 1000,
                stats.lateness.max_ns / 1000
            );
        }
        Cmd::Tcp {
            bandwidth,
            latency,
            duration,
            tool,
            cc,
        } => {
            let p = LinkProfile {
                bandwidth: Some(bandwidth),
                ..profile(latency)
            };
            let pair = Pair::start(probe::pair_network(&p, &profile(latency)), 1)?;
            let warmup = Duration::from_secs(2).min(duration / 3);
            // The shaper's own output rate on a → b while the transfer runs (IP bytes).
            let (r, ip_rate) = std::thread::scope(|sc| {
                let sim = &pair.sim;
                let watch = sc.spawn(move || -> Option<f64> {
                    std::thread::sleep(warmup + Duration::from_millis(500));
                    let (t0, s0) = (std::time::Instant::now(), sim.stats().ok()?);
                    std::thread::sleep(duration.saturating_sub(warmup + Duration::from_secs(1)));
                    let (t1, s1) = (std::time::Instant::now(), sim.stats().ok()?);
                    let bytes = s1.core.released_bytes - s0.core.released_bytes;
                    Some(bytes as f64 * 8.0 / (t1 - t0).as_secs_f64())
                });
                let r = match tool.as_str() {
                    "iperf3" => probe::iperf3(&pair.a, &pair.b, duration, warmup, cc.as_deref()),
                    _ => probe::tcp_bulk(&pair.a, &pair.b, duration, warmup, cc.as_deref()),
                };
                (r, watch.join().ok().flatten())
            });
            let r = r?;
            if let Some(rate) = ip_rate {
                println!(
                    "  shaper released {:.3} Mbit/s of IP packets (both directions) during the transfer",
                    rate / 1e6
                );
            }
            let stats = pair.stop()?;
            println!(
                "  receiver: longest pause between reads {:?}, {:.2} s into the window",
                r.longest_gap.0, r.longest_gap.1
            );
            if std::env::var_os("NETSIM_PROBE_SERIES").is_some() {
                println!(
                    "  kB per 100 ms: {:?}",
                    r.per_100ms.iter().map(|b| b / 1000).collect::<Vec<_>>()
                );
            }
            if let Some(i) = r.sender {
                println!(
                    "  sender: busy {:.0} ms, rwnd-limited {:.0} ms, sndbuf-limited {:.0} ms, {} retransmits, cwnd {}, srtt {:.1} ms",
                    i.busy_ms,
                    i.rwnd_limited_ms,
                    i.sndbuf_limited_ms,
                    i.retransmits,
                    i.cwnd,
                    i.srtt_ms
                );
            }
            let expected = expected_goodput(bandwidth.bits_per_sec().unwrap_or(0) as f64);
            println!(
                "configured {bandwidth} (IP bytes; ≈ {:.3} Mbit/s of TCP payload at MSS 1448): measured {:.3} Mbit/s over {:.1} s ({:+.2} %); queue drops {}",
                expected / 1e6,
                r.goodput_bps / 1e6,
                r.seconds,
                (r.goodput_bps / expected - 1.0) * 100.0,
                stats.core.dropped_queue
            );
        }
        Cmd::Loss {
            loss,
            correlation,
            count,
        } => {
            let p = LinkProfile {
                loss: Some(Percent(loss)),
                loss_correlation: Some(Percent(correlation)),
                ..Default::default()
            };
            let pair = Pair::start(probe::pair_network(&p, &LinkProfile::default()), 1)?;
            let c = probe::udp_count(
                &pair.a,
                &pair.b,
                count,
                200,
                Duration::from_micros(200),
                Duration::from_millis(300),
            )?;
            let stats = pair.stop()?;
            let (lo, hi) = binomial_interval(count, loss / 100.0);
            println!(
                "configured {loss} %: {} of {} datagrams lost = {:.3} % (95 % interval for {count} at {loss} %: {:.3}–{:.3} %); shaper counted {} loss drops",
                c.sent - c.received,
                c.sent,
                c.loss() * 100.0,
                lo * 100.0,
                hi * 100.0,
                stats.core.dropped_loss
            );
        }
        Cmd::Pps {
            duration,
            size,
            latency,
            senders,
        } => {
            let r = probe::pps(&profile(latency), size, duration, senders)?;
            println!(
                "{size}-byte UDP, latency {}: sent {} pkt/s, shaper forwarded {:.0} pkt/s using {:.0} % of a core ⇒ {:.0} pkt/s per core; TUN queue drops (sent − read) {}",
                humantime::format_duration(latency),
                (r.sent as f64 / r.seconds) as u64,
                r.forwarded_pps,
                r.shaper_cpu_share * 100.0,
                r.pps_per_core,
                r.sent.saturating_sub(r.stats.read)
            );
            println!(
                "  shaper: {} loop turns, {} timer sets, {:.1} % of its CPU spinning, lateness mean {} µs, p50 ≤ {} µs, p99 ≤ {} µs",
                r.stats.wakeups,
                r.stats.timer_sets,
                r.stats.spin_ns as f64 / r.stats.cpu_ns.max(1) as f64 * 100.0,
                r.stats.lateness.mean_ns / 1000,
                r.stats.lateness.p50_ns_at_most / 1000,
                r.stats.lateness.p99_ns_at_most / 1000
            );
        }
        Cmd::Bench { quick, out } => {
            let md = bench(quick)?;
            match out {
                Some(path) => std::fs::write(&path, &md)?,
                None => print!("{md}"),
            }
        }
        Cmd::Hold { nodes } => hold(nodes)?,
        Cmd::Scale { nodes } => scale(nodes)?,
    }
    Ok(())
}

/// TCP payload rate when the link carries `bps` of IP packets: 1448 payload bytes per 1500-byte
/// packet (IP 20 + TCP 20 + timestamps 12).
fn expected_goodput(bps: f64) -> f64 {
    bps * 1448.0 / 1500.0
}

/// Mean one-way delay with uniform jitter ±`j` around `l`, clamped at zero: `l` when `l ≥ j`,
/// otherwise `(l + j)² / 4j`.
fn uniform_mean_delay(l: f64, j: f64) -> f64 {
    if l >= j {
        l
    } else {
        (l + j).powi(2) / (4.0 * j)
    }
}

/// Normal-approximation 95 % interval of the loss fraction for `n` trials at probability `p`.
fn binomial_interval(n: u64, p: f64) -> (f64, f64) {
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    ((p - 1.96 * sd).max(0.0), p + 1.96 * sd)
}

/// The page's title and where its figures come from: when, on what, under what load.
fn bench_header(quick: bool) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string();
    format!(
        "# Network emulation accuracy\n\nWritten by `netsim-probe bench{}` (`target/release/netsim-probe bench --out docs/network-accuracy.md`, as root) on {} UTC: {cores} cores ({cpu}), kernel {kernel}, 1-minute load average {load} at the start. Every figure is measured by that run: two network namespaces with the shaper between them, measured with ping, TCP, iperf3 and UDP. [network-emulation.md](network-emulation.md) explains the shaper and what the figures mean.\n\n",
        if quick { " --quick" } else { "" },
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .trim_end_matches('Z')
            .replace('T', " "),
    )
}

fn bench(quick: bool) -> Result<String, ProbeError> {
    let mut md = bench_header(quick);
    let count = if quick { 30 } else { 200 };
    let _ = writeln!(
        md,
        "## Latency (ping RTT, {count} pings, both directions shaped)\n"
    );
    let _ = writeln!(
        md,
        "| one-way latency | jitter (uniform) | expected mean RTT | ping avg | error | min | max | mdev |\n|---|---|---|---|---|---|---|---|"
    );
    // Baseline: the same ICMP path on loopback inside a namespace (no shaper).
    let pair = Pair::start(Network::default(), 1)?;
    let lo = probe::ping(
        &pair.a,
        std::net::Ipv4Addr::LOCALHOST,
        count,
        Duration::from_millis(10),
    )?;
    for (lat, jit) in [
        (0, 0),
        (1, 0),
        (10, 0),
        (50, 0),
        (200, 0),
        (1, 5),
        (10, 5),
        (50, 5),
        (200, 5),
    ] {
        let (latency, jitter) = (Duration::from_millis(lat), Duration::from_millis(jit));
        let p = LinkProfile {
            jitter: Some(jitter),
            ..profile(latency)
        };
        pair.set_profile(p.clone(), p)?;
        let interval = Duration::from_millis(if lat >= 50 { 20 } else { 10 });
        let s = probe::ping(&pair.a, pair.b.addr(), count, interval)?;
        let expected = 2.0 * uniform_mean_delay(lat as f64, jit as f64);
        let _ = writeln!(
            md,
            "| {lat} ms | {jit} ms | {expected:.3} ms | {:.3} ms | {:+.3} ms ({:+.2} %) | {:.3} | {:.3} | {:.3} |",
            s.avg_ms,
            s.avg_ms - expected,
            if expected > 0.0 {
                (s.avg_ms / expected - 1.0) * 100.0
            } else {
                0.0
            },
            s.min_ms,
            s.max_ms,
            s.mdev_ms
        );
    }
    let stats = pair.stop()?;
    let _ = writeln!(
        md,
        "\nLoopback ping inside a namespace (no shaper): avg {:.3} ms. Shaper lateness (write time − scheduled release) over the run: mean {:.1} µs, p99 ≤ {:.1} µs, max {:.1} µs.\n",
        lo.avg_ms,
        stats.lateness.mean_ns as f64 / 1e3,
        stats.lateness.p99_ns_at_most as f64 / 1e3,
        stats.lateness.max_ns as f64 / 1e3
    );

    let secs = if quick { 6 } else { 24 };
    let system_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = writeln!(
        md,
        "## Throughput (one TCP connection a → b, {secs} s, first 3 s excluded, 10 ms one-way latency)\n"
    );
    let _ = writeln!(
        md,
        "Expected goodput: the link rate counts IP bytes, so a full 1500-byte packet carries 1448 bytes of payload (IP 20 + TCP 20 + timestamps 12). The system's congestion control is `{system_cc}`; BBR leaves the link for ~200 ms every 10 s (PROBE_RTT), which shows as about −2 %.\n"
    );
    let _ = writeln!(
        md,
        "| bandwidth | expected goodput | own sender, cubic | error | retransmits | own sender, bbr | error | iperf3 ({system_cc}) | error |\n|---|---|---|---|---|---|---|---|---|"
    );
    for mbit in [1u64, 10, 100] {
        let bw = Bandwidth::BitsPerSec(mbit * 1_000_000);
        let p = LinkProfile {
            bandwidth: Some(bw),
            ..profile(Duration::from_millis(10))
        };
        let expected = expected_goodput((mbit * 1_000_000) as f64);
        let pair = Pair::start(
            probe::pair_network(&p, &profile(Duration::from_millis(10))),
            1,
        )?;
        let (d, w) = (Duration::from_secs(secs), Duration::from_secs(3));
        let cubic = probe::tcp_bulk(&pair.a, &pair.b, d, w, Some("cubic"))?;
        let bbr = probe::tcp_bulk(&pair.a, &pair.b, d, w, Some("bbr"));
        let ip3 = probe::iperf3(&pair.a, &pair.b, d, w, None);
        pair.stop()?;
        let cell = |r: &Result<probe::TcpResult, ProbeError>| match r {
            Ok(r) => format!(
                "{:.3} Mbit/s | {:+.2} %",
                r.goodput_bps / 1e6,
                (r.goodput_bps / expected - 1.0) * 100.0
            ),
            Err(e) => format!("({e}) | –"),
        };
        let retrans = cubic
            .sender
            .map_or("?".into(), |i| i.retransmits.to_string());
        let _ = writeln!(
            md,
            "| {bw} | {:.3} Mbit/s | {} | {retrans} | {} | {} |",
            expected / 1e6,
            cell(&Ok(cubic.clone())),
            cell(&bbr),
            cell(&ip3)
        );
    }

    let n = if quick { 5_000 } else { 50_000 };
    let _ = writeln!(
        md,
        "\n## Loss (a → b only, {n} UDP datagrams counted at the receiver)\n"
    );
    let _ = writeln!(
        md,
        "| configured | lost | measured | 95 % interval | within | dropped by the shaper's loss model |\n|---|---|---|---|---|---|"
    );
    for loss in [1.0, 5.0, 20.0] {
        let p = LinkProfile {
            loss: Some(Percent(loss)),
            ..Default::default()
        };
        let pair = Pair::start(probe::pair_network(&p, &LinkProfile::default()), 7)?;
        let c = probe::udp_count(
            &pair.a,
            &pair.b,
            n,
            200,
            Duration::from_micros(100),
            Duration::from_millis(300),
        )?;
        let stats = pair.stop()?;
        let (lo, hi) = binomial_interval(n, loss / 100.0);
        let m = c.loss();
        let _ = writeln!(
            md,
            "| {loss} % | {} | {:.3} % | {:.3}–{:.3} % | {} | {} |",
            c.sent - c.received,
            m * 100.0,
            lo * 100.0,
            hi * 100.0,
            if (lo..=hi).contains(&m) { "yes" } else { "no" },
            stats.core.dropped_loss
        );
    }

    let dur = Duration::from_secs(if quick { 2 } else { 5 });
    let _ = writeln!(
        md,
        "\n## Shaper cost (UDP flood a → b, {}s)\n",
        dur.as_secs()
    );
    let _ = writeln!(
        md,
        "| packet | latency | offered pkt/s | forwarded pkt/s | shaper CPU | pkt/s per core |\n|---|---|---|---|---|---|"
    );
    for (size, lat) in [(64usize, 0u64), (64, 10), (1400, 0)] {
        let r = probe::pps(&profile(Duration::from_millis(lat)), size, dur, 1)?;
        let _ = writeln!(
            md,
            "| {size} B | {lat} ms | {:.0} | {:.0} | {:.0} % | {:.0} |",
            r.sent as f64 / r.seconds,
            r.forwarded_pps,
            r.shaper_cpu_share * 100.0,
            r.pps_per_core
        );
    }
    Ok(md)
}

fn hold(nodes: u32) -> Result<(), ProbeError> {
    let sim = Netsim::start(NetsimConfig::new(Network::default(), vec!["g".into()], 1))?;
    let mut children = Vec::new();
    let mut inodes = Vec::new();
    for i in 0..nodes {
        let n = sim.add_node(i, "g")?;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("1000");
        n.configure(&mut cmd);
        children.push(cmd.spawn()?.id());
        inodes.push(n.netns_inode());
        std::mem::forget(n);
    }
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "children": children, "netns": inodes })
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn scale(nodes: u32) -> Result<(), ProbeError> {
    let t0 = std::time::Instant::now();
    let sim = Netsim::start(NetsimConfig::new(Network::default(), vec!["g".into()], 1))?;
    let mut children = Vec::new();
    let mut nets = Vec::new();
    let mut inodes = Vec::new();
    let wanted: Vec<(u32, &str)> = (0..nodes).map(|i| (i, "g")).collect();
    for n in sim.add_nodes(&wanted)? {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("1000");
        n.configure(&mut cmd);
        children.push(cmd.spawn()?);
        inodes.push(n.netns_inode());
        nets.push(n);
    }
    let created = t0.elapsed();
    let t1 = std::time::Instant::now();
    for c in &mut children {
        let _ = c.kill();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    let killed = t1.elapsed();
    let t2 = std::time::Instant::now();
    drop(nets);
    let stats = sim.stop()?;
    let stopped = t2.elapsed();
    let t3 = std::time::Instant::now();
    let inodes_left = loop {
        let live = netsim::live_netns_inodes();
        let left = inodes.iter().filter(|i| live.contains(i)).count();
        if t3.elapsed() > Duration::from_secs(60) || left == 0 {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "{nodes} nodes: created in {:.2} s ({:.1} ms each), processes killed in {:.2} s, shaper stopped (TUN devices closed) in {:.2} s, namespaces gone {:.2} s later ({} of ours still referenced); shaper saw {} nodes",
        created.as_secs_f64(),
        created.as_secs_f64() * 1e3 / nodes as f64,
        killed.as_secs_f64(),
        stopped.as_secs_f64(),
        t3.elapsed().as_secs_f64(),
        inodes_left,
        stats.nodes
    );
    Ok(())
}
