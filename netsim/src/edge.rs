//! The shaper: one thread holding every node's TUN descriptor. It waits on epoll (TUN devices,
//! a timerfd armed at the core's next deadline, an eventfd for commands), reads IPv4 packets,
//! maps the destination address to a node, asks the [`Core`] and writes each released packet
//! into the destination's TUN at its time.

use crate::core::{Action, Core, CoreStats, GroupIdx, Nanos, NodeId};
use crate::error::NetsimError;
use crate::netns::{self, Addressing, NodeNet, TunSettings};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use testbed_contract::plan::{Network, NetworkEvent};

const TOKEN_WAKE: u64 = u64::MAX;
const TOKEN_TIMER: u64 = u64::MAX - 1;
/// Packets read from one TUN before the loop releases what is due and looks at the others.
const READ_BUDGET: usize = 16;
/// A packet read from a TUN device: a fixed-size buffer (reused, never zeroed) and its length.
struct Packet {
    buf: Box<[u8]>,
    len: usize,
}

/// What the shaper is started with.
#[derive(Debug, Clone)]
pub struct NetsimConfig {
    /// The plan's `network` section.
    pub network: Network,
    /// The plan's group ids, in plan order.
    pub groups: Vec<String>,
    /// The plan's seed (every link's random stream derives from it).
    pub seed: u64,
    pub addressing: Addressing,
    pub tun: TunSettings,
    /// Run the shaper thread with a real-time (SCHED_FIFO) priority, so it wakes on time even
    /// when the nodes keep the cores busy. Falls back to normal scheduling if refused.
    pub realtime: bool,
    /// Wake this long before a release time and spin until it: timer wake-ups on a virtual
    /// machine come tens of microseconds late, spinning a little removes that lateness. Costs at
    /// most this much CPU per wake-up; zero disables it.
    pub spin: std::time::Duration,
    /// Most of a core spinning may take (0.1 = 10 %, measured over 100 ms windows); past it the
    /// shaper relies on the timer alone until the next window.
    pub spin_budget: f64,
}

impl NetsimConfig {
    pub fn new(network: Network, groups: Vec<String>, seed: u64) -> NetsimConfig {
        NetsimConfig {
            network,
            groups,
            seed,
            addressing: Addressing::default(),
            tun: TunSettings::default(),
            realtime: true,
            spin: std::time::Duration::from_micros(DEFAULT_SPIN_US),
            spin_budget: 0.1,
        }
    }
}

/// Default of [`NetsimConfig::spin`], from measurements on a 2-core VM (docs/network-emulation.md).
pub const DEFAULT_SPIN_US: u64 = 60;

/// How late packets were written compared with their scheduled release time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Lateness {
    pub count: u64,
    pub mean_ns: u64,
    pub max_ns: u64,
    /// Upper bound of the power-of-two bucket holding the 50th / 99th percentile.
    pub p50_ns_at_most: u64,
    pub p99_ns_at_most: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct LatenessHist {
    count: u64,
    sum: u64,
    max: u64,
    /// Bucket `i` counts lateness in `[2^(i-1), 2^i)` ns (bucket 0: 0 ns; the last: ≥ 1 s).
    buckets: [u64; 32],
}

impl LatenessHist {
    fn record(&mut self, ns: u64) {
        self.count += 1;
        self.sum += ns;
        self.max = self.max.max(ns);
        let b = (64 - ns.leading_zeros()) as usize;
        self.buckets[b.min(31)] += 1;
    }

    fn quantile_bound(&self, q: f64) -> u64 {
        let target = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return if i == 0 { 0 } else { 1u64 << i };
            }
        }
        self.max
    }

    fn summary(&self) -> Lateness {
        Lateness {
            count: self.count,
            mean_ns: self.sum.checked_div(self.count).unwrap_or(0),
            max_ns: self.max,
            p50_ns_at_most: self.quantile_bound(0.5),
            p99_ns_at_most: self.quantile_bound(0.99),
        }
    }
}

/// Counters of the shaper (the core's and the edge's own).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct NetsimStats {
    pub core: CoreStats,
    /// Packets read from TUN devices.
    pub read: u64,
    /// Packets written to TUN devices.
    pub written: u64,
    pub write_errors: u64,
    /// Packets that were not IPv4, or too short.
    pub not_ipv4: u64,
    /// IPv4 packets to an address that is no node's.
    pub unroutable: u64,
    pub lateness: Lateness,
    /// Packets held right now.
    pub in_flight: u64,
    /// Part of `cpu_ns` spent spinning just before release times (see [`NetsimConfig::spin`]).
    pub spin_ns: u64,
    /// Turns of the event loop, and how often the release timer was re-armed.
    pub wakeups: u64,
    pub timer_sets: u64,
    /// CPU time the shaper thread used, and the wall time it ran.
    pub cpu_ns: u64,
    pub wall_ns: u64,
    pub nodes: u32,
}

impl NetsimStats {
    /// Share of one core the shaper used.
    pub fn cpu_share(&self) -> f64 {
        if self.wall_ns == 0 {
            0.0
        } else {
            self.cpu_ns as f64 / self.wall_ns as f64
        }
    }
}

enum Cmd {
    AddNode {
        index: NodeId,
        group: GroupIdx,
        tun: OwnedFd,
        reply: Sender<Result<(), NetsimError>>,
    },
    RemoveNode(NodeId),
    Apply(Action),
    StartEvents,
    Stats(Sender<NetsimStats>),
    Stop,
}

/// The running shaper. Dropping it stops the thread and closes every TUN device.
pub struct Netsim {
    tx: Sender<Cmd>,
    wake: Arc<sys::Wake>,
    thread: Option<JoinHandle<Result<NetsimStats, NetsimError>>>,
    groups: Vec<String>,
    addressing: Addressing,
    tun: TunSettings,
}

impl Netsim {
    /// Checks that this process can emulate a network here (privileges, `/dev/net/tun`, a
    /// namespace with a TUN device can be made), without starting anything that stays. The
    /// error says what is missing.
    pub fn preflight() -> Result<(), NetsimError> {
        if !sys::has_admin_caps() {
            return Err(NetsimError::NotPrivileged);
        }
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            return Err(NetsimError::NoTun(e));
        }
        let a = Addressing::default();
        netns::create(
            0,
            a.addr_of(0).unwrap_or(Ipv4Addr::LOCALHOST),
            a.prefix,
            TunSettings::default(),
        )
        .map(drop)
    }

    /// Starts the shaper thread for the plan's network section.
    pub fn start(config: NetsimConfig) -> Result<Netsim, NetsimError> {
        let core = Core::<Packet>::new(&config.network, &config.groups, config.seed)?;
        let epoll = sys::Epoll::new()?;
        let timer = sys::Timer::new()?;
        let wake = Arc::new(sys::Wake::new()?);
        epoll.add(wake.fd(), TOKEN_WAKE)?;
        epoll.add(timer.fd(), TOKEN_TIMER)?;
        let (tx, rx) = mpsc::channel();
        let mut lp = Loop {
            core,
            nodes: Vec::new(),
            epoll,
            timer,
            wake: Arc::clone(&wake),
            rx,
            pool: Vec::new(),
            // Without offloads the kernel never hands over more than the MTU.
            buf_len: config.tun.mtu as usize + 64,
            stats: NetsimStats::default(),
            lateness: LatenessHist::default(),
            armed: None,
            addressing: config.addressing,
            realtime: config.realtime,
            spin_ns: config.spin.as_nanos() as Nanos,
            spin_budget_ns: (SPIN_WINDOW_NS as f64 * config.spin_budget.clamp(0.0, 1.0)) as Nanos,
            spin_window: (0, 0),
            started: 0,
            cpu0: 0,
        };
        let thread = std::thread::Builder::new()
            .name("netsim-shaper".into())
            .spawn(move || lp.run())?;
        tracing::info!(groups = ?config.groups, seed = config.seed, "shaper started");
        Ok(Netsim {
            tx,
            wake,
            thread: Some(thread),
            groups: config.groups,
            addressing: config.addressing,
            tun: config.tun,
        })
    }

    fn send(&self, cmd: Cmd) -> Result<(), NetsimError> {
        self.tx
            .send(cmd)
            .map_err(|_| NetsimError::Stopped(String::new()))?;
        self.wake.notify();
        Ok(())
    }

    pub fn addressing(&self) -> Addressing {
        self.addressing
    }

    /// Creates node `index`'s namespace and TUN device (address from the addressing scheme),
    /// hands the TUN to the shaper as a member of `group`, and returns the handle used to
    /// spawn the node's process inside.
    pub fn add_node(&self, index: u32, group: &str) -> Result<NodeNet, NetsimError> {
        let g =
            self.groups.iter().position(|x| x == group).ok_or_else(|| {
                NetsimError::UnknownGroup(group.to_string(), self.groups.join(", "))
            })?;
        let addr = self
            .addressing
            .addr_of(index)
            .ok_or(NetsimError::AddressRange {
                index,
                base: self.addressing.base,
                prefix: self.addressing.prefix,
            })?;
        let (tun, ns) = netns::create(index, addr, self.addressing.prefix, self.tun)?;
        let netns_inode = sys::inode_of(&ns)?;
        let (reply, answer) = mpsc::channel();
        self.send(Cmd::AddNode {
            index,
            group: g as GroupIdx,
            tun,
            reply,
        })?;
        answer
            .recv()
            .map_err(|_| NetsimError::Stopped(String::new()))??;
        tracing::debug!(index, %addr, group, "node namespace ready");
        Ok(NodeNet {
            index,
            addr,
            group: group.to_string(),
            netns: Arc::new(ns),
            netns_inode,
        })
    }

    /// [`Netsim::add_node`] for many nodes, creating up to 16 namespaces at a time (creating one
    /// takes milliseconds, mostly waiting in the kernel). Results are in the order given; on
    /// the first error the nodes already made are dropped again.
    pub fn add_nodes(&self, nodes: &[(u32, &str)]) -> Result<Vec<NodeNet>, NetsimError> {
        const PARALLEL: usize = 16;
        let mut out = Vec::with_capacity(nodes.len());
        for chunk in nodes.chunks(PARALLEL) {
            let made: Vec<Result<NodeNet, NetsimError>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&(index, group)| s.spawn(move || self.add_node(index, group)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(NetsimError::Stopped(
                                " (a namespace thread panicked)".into(),
                            ))
                        })
                    })
                    .collect()
            });
            for m in made {
                match m {
                    Ok(n) => out.push(n),
                    Err(e) => {
                        for n in &out {
                            let _ = self.remove_node(n.index);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Closes node `index`'s TUN device; its packets in flight are dropped. The namespace
    /// itself goes when its processes and every [`NodeNet`] clone are gone.
    pub fn remove_node(&self, index: u32) -> Result<(), NetsimError> {
        self.send(Cmd::RemoveNode(index))
    }

    /// Time zero of the plan's `events` (call it when the workload starts).
    pub fn start_events(&self) -> Result<(), NetsimError> {
        self.send(Cmd::StartEvents)
    }

    /// Applies a network event now (its `at` is ignored).
    pub fn apply_event(&self, event: &NetworkEvent) -> Result<(), NetsimError> {
        self.apply(Action::from_event(event, &self.groups, 0)?)
    }

    pub fn apply(&self, action: Action) -> Result<(), NetsimError> {
        self.send(Cmd::Apply(action))
    }

    pub fn stats(&self) -> Result<NetsimStats, NetsimError> {
        let (reply, answer) = mpsc::channel();
        self.send(Cmd::Stats(reply))?;
        answer
            .recv()
            .map_err(|_| NetsimError::Stopped(String::new()))
    }

    /// Stops the shaper, closes every TUN device and returns the final counters.
    pub fn stop(mut self) -> Result<NetsimStats, NetsimError> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<NetsimStats, NetsimError> {
        let Some(t) = self.thread.take() else {
            return Err(NetsimError::Stopped(String::new()));
        };
        let _ = self.send(Cmd::Stop);
        let stats = t
            .join()
            .map_err(|_| NetsimError::Stopped(" (the shaper thread panicked)".into()))??;
        tracing::info!(
            read = stats.read,
            written = stats.written,
            cpu_share = stats.cpu_share(),
            "shaper stopped"
        );
        Ok(stats)
    }
}

impl Drop for Netsim {
    fn drop(&mut self) {
        if self.thread.is_some()
            && let Err(e) = self.stop_thread()
        {
            tracing::warn!("shaper: {e}");
        }
    }
}

/// Closes TUN devices from several threads at once: each close waits for an RCU grace period
/// (and unregisters the device), and concurrent closes share grace periods — 300 devices take
/// seconds one by one.
fn close_all(fds: Vec<OwnedFd>) {
    const THREADS: usize = 32;
    let per = fds.len().div_ceil(THREADS).max(1);
    let mut fds = fds;
    std::thread::scope(|s| {
        while !fds.is_empty() {
            let chunk: Vec<OwnedFd> = fds.drain(..per.min(fds.len())).collect();
            s.spawn(move || drop(chunk));
        }
    });
}

struct Loop {
    core: Core<Packet>,
    nodes: Vec<Option<OwnedFd>>,
    epoll: sys::Epoll,
    timer: sys::Timer,
    wake: Arc<sys::Wake>,
    rx: Receiver<Cmd>,
    pool: Vec<Box<[u8]>>,
    buf_len: usize,
    stats: NetsimStats,
    lateness: LatenessHist,
    armed: Option<Nanos>,
    addressing: Addressing,
    realtime: bool,
    spin_ns: Nanos,
    spin_budget_ns: Nanos,
    /// (start of the current window, spin time spent in it).
    spin_window: (Nanos, Nanos),
    /// When the loop started, and the thread's CPU time then.
    started: Nanos,
    cpu0: Nanos,
}

const SPIN_WINDOW_NS: Nanos = 100_000_000;

impl Loop {
    fn run(&mut self) -> Result<NetsimStats, NetsimError> {
        sys::set_min_timer_slack();
        if self.realtime
            && let Err(e) = sys::set_realtime(10)
        {
            tracing::warn!(
                "shaper runs without real-time priority ({e}); delays may grow under load"
            );
        }
        self.started = sys::now_ns();
        self.cpu0 = sys::thread_cpu_ns();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        'run: loop {
            let n = self.epoll.wait(&mut events)?;
            self.stats.wakeups += 1;
            let now = sys::now_ns();
            for ev in &events[..n] {
                match ev.u64 {
                    TOKEN_WAKE => {
                        self.wake.clear();
                        while let Ok(cmd) = self.rx.try_recv() {
                            if !self.command(cmd, now) {
                                break 'run;
                            }
                        }
                    }
                    TOKEN_TIMER => {
                        self.timer.clear();
                        self.armed = None;
                    }
                    node => {
                        self.read_from(node as NodeId, now);
                        // Release what is due between reads, so a burst on one device does
                        // not hold back packets due now.
                        self.release_due(sys::now_ns());
                    }
                }
            }
            self.release();
            self.arm()?;
        }
        let stats = self.snapshot();
        close_all(self.nodes.drain(..).flatten().collect());
        Ok(stats)
    }

    /// The counters so far (called on the shaper thread, so its CPU time is the thread's).
    fn snapshot(&self) -> NetsimStats {
        let mut s = self.stats;
        s.cpu_ns = sys::thread_cpu_ns() - self.cpu0;
        s.wall_ns = sys::now_ns() - self.started;
        s.core = self.core.stats();
        s.lateness = self.lateness.summary();
        s.in_flight = self.core.in_flight() as u64;
        s.nodes = self.nodes.iter().filter(|n| n.is_some()).count() as u32;
        s
    }

    /// Handles one command; false means stop.
    fn command(&mut self, cmd: Cmd, now: Nanos) -> bool {
        match cmd {
            Cmd::AddNode {
                index,
                group,
                tun,
                reply,
            } => {
                let i = index as usize;
                if self.nodes.len() <= i {
                    self.nodes.resize_with(i + 1, || None);
                }
                let result = if self.nodes[i].is_some() {
                    Err(NetsimError::DuplicateNode(index))
                } else {
                    match self.epoll.add(tun.as_raw_fd(), index as u64) {
                        Ok(()) => {
                            self.nodes[i] = Some(tun);
                            self.core.add_node(index, group);
                            Ok(())
                        }
                        Err(e) => Err(NetsimError::Io(e)),
                    }
                };
                let _ = reply.send(result);
            }
            Cmd::RemoveNode(index) => {
                if let Some(tun) = self.nodes.get_mut(index as usize).and_then(Option::take) {
                    let _ = self.epoll.remove(tun.as_raw_fd());
                    self.core.remove_node(index);
                    // Closing waits for an RCU grace period (milliseconds): not on this thread.
                    std::thread::spawn(move || drop(tun));
                }
            }
            Cmd::Apply(a) => self.core.apply(&a),
            Cmd::StartEvents => self.core.start_events(now),
            Cmd::Stats(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Cmd::Stop => return false,
        }
        true
    }

    fn read_from(&mut self, src: NodeId, now: Nanos) {
        let Some(fd) = self
            .nodes
            .get(src as usize)
            .and_then(|n| n.as_ref())
            .map(|f| f.as_raw_fd())
        else {
            return;
        };
        for _ in 0..READ_BUDGET {
            let mut buf = self
                .pool
                .pop()
                .unwrap_or_else(|| vec![0u8; self.buf_len].into_boxed_slice());
            match sys::read(fd, &mut buf) {
                Ok(Some(len)) => {
                    self.stats.read += 1;
                    self.route(src, now, Packet { buf, len });
                }
                Ok(None) => {
                    self.pool.push(buf);
                    return;
                }
                Err(e) => {
                    self.pool.push(buf);
                    tracing::warn!(node = src, "reading the TUN device: {e}");
                    return;
                }
            }
        }
    }

    fn route(&mut self, src: NodeId, now: Nanos, p: Packet) {
        let buf = &p.buf[..p.len];
        if buf.len() < 20 || buf[0] >> 4 != 4 {
            self.stats.not_ipv4 += 1;
            self.pool.push(p.buf);
            return;
        }
        let dst_addr = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
        let Some(dst) = self.addressing.node_of(dst_addr) else {
            self.stats.unroutable += 1;
            self.pool.push(p.buf);
            return;
        };
        let len = p.len;
        self.core.submit(now, src, dst, len, p);
    }

    fn release(&mut self) {
        self.release_due(sys::now_ns());
        // Spin until a release time that is closer than a timer wake-up would be precise; once
        // per loop turn, so the TUN devices are read between two spins.
        let Some(next) = self.core.next_deadline() else {
            return;
        };
        let now = sys::now_ns();
        if next > now && next - now <= self.spin_lead(now) {
            let mut t = now;
            while t < next {
                std::hint::spin_loop();
                t = sys::now_ns();
            }
            self.spin_window.1 += t - now;
            self.stats.spin_ns += t - now;
            self.release_due(t);
        }
    }

    /// How early to wake for a release: the configured spin while this window's budget lasts.
    fn spin_lead(&mut self, now: Nanos) -> Nanos {
        if now.saturating_sub(self.spin_window.0) >= SPIN_WINDOW_NS {
            self.spin_window = (now, 0);
        }
        if self.spin_window.1 < self.spin_budget_ns {
            self.spin_ns
        } else {
            0
        }
    }

    fn release_due(&mut self, now: Nanos) {
        let pool = &mut self.pool;
        while let Some(r) = self.core.pop_due_with(now, |_, p| pool.push(p.buf)) {
            match self.nodes.get(r.dst as usize).and_then(|n| n.as_ref()) {
                Some(fd) => match (
                    sys::now_ns(),
                    sys::write(fd.as_raw_fd(), &r.payload.buf[..r.payload.len]),
                ) {
                    (t, Ok(_)) => {
                        self.stats.written += 1;
                        self.lateness.record(t.saturating_sub(r.at));
                    }
                    (_, Err(e)) => {
                        self.stats.write_errors += 1;
                        tracing::debug!(node = r.dst, "writing the TUN device: {e}");
                    }
                },
                None => self.stats.write_errors += 1,
            }
            pool.push(r.payload.buf);
        }
    }

    fn arm(&mut self) -> Result<(), NetsimError> {
        let lead = self.spin_lead(sys::now_ns());
        let next = self.core.next_deadline().map(|d| d.saturating_sub(lead));
        if next != self.armed {
            self.timer.set(next)?;
            self.stats.timer_sets += 1;
            self.armed = next;
        }
        Ok(())
    }
}
