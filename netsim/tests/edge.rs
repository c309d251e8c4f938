//! The TUN edge on a real kernel: namespaces, TUN devices, real TCP/UDP through the shaper.
//! These tests need root and /dev/net/tun (CI runs as root); without them they fail and say so.
//! Accuracy bounds here are deliberately generous (the machine may be busy); precise figures
//! come from `netsim-probe bench`.

use netsim::core::Action;
use netsim::probe::{self, Pair};
use netsim::{Netsim, NetsimConfig, live_netns_inodes};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use testbed_contract::plan::{Bandwidth, LinkProfile, Network, Percent};

fn require_privileges() {
    if let Err(e) = Netsim::preflight() {
        panic!("this test needs root and /dev/net/tun (CI runs as root): {e}");
    }
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// Mean RTT of `n` UDP echoes from `pair.a` to an echo thread in `pair.b`.
fn udp_echo_rtt(pair: &Pair, n: u32) -> Duration {
    let server = pair
        .b
        .run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7007)))
        .unwrap()
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut served = 0;
        while served < n {
            if let Ok((len, from)) = server.recv_from(&mut buf) {
                server.send_to(&buf[..len], from).unwrap();
                served += 1;
            }
        }
    });
    let client = pair
        .a
        .run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let dst = SocketAddrV4::new(pair.b.addr(), 7007);
    let mut total = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        client.send_to(&i.to_be_bytes(), dst).unwrap();
        let mut buf = [0u8; 64];
        let len = client
            .recv(&mut buf)
            .expect("echo reply (no loss configured)");
        assert_eq!(&buf[..len], &i.to_be_bytes());
        total += t.elapsed();
    }
    echo.join().unwrap();
    total / n
}

#[test]
fn a_configured_latency_shows_in_the_round_trip_time() {
    require_privileges();
    let p = LinkProfile {
        latency: ms(20),
        ..Default::default()
    };
    let pair = Pair::start(probe::pair_network(&p, &p), 1).unwrap();
    let rtt = udp_echo_rtt(&pair, 20);
    let stats = pair.stop().unwrap();
    assert!(
        rtt >= Duration::from_millis(40) && rtt < Duration::from_millis(60),
        "RTT {rtt:?} for 2 × 20 ms"
    );
    assert_eq!(stats.core.released, 40);
    assert_eq!(stats.written, 40);
    assert_eq!(stats.write_errors, 0);
}

#[test]
fn node_addresses_live_only_in_their_namespace_and_children_start_there() {
    require_privileges();
    let pair = Pair::start(Network::default(), 1).unwrap();
    let (a, b) = (pair.a.addr(), pair.b.addr());
    assert_eq!(
        (a, b),
        (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2))
    );
    let bind = |ip: Ipv4Addr| move || UdpSocket::bind(SocketAddrV4::new(ip, 0)).is_ok();
    assert!(pair.a.run_in(bind(a)).unwrap());
    assert!(
        !pair.a.run_in(bind(b)).unwrap(),
        "b's address is not in a's namespace"
    );
    assert!(!bind(a)(), "nor in the test's own namespace");
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    pair.a.configure(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let link = std::fs::read_link(format!("/proc/{}/ns/net", child.id())).unwrap();
    assert_eq!(
        link.to_str().unwrap(),
        format!("net:[{}]", pair.a.netns_inode())
    );
    child.kill().unwrap();
    child.wait().unwrap();
    pair.stop().unwrap();
}

#[test]
fn tcp_throughput_follows_the_bandwidth_limit() {
    require_privileges();
    let p = LinkProfile {
        latency: ms(5),
        bandwidth: Some(Bandwidth::BitsPerSec(10_000_000)),
        ..Default::default()
    };
    let back = LinkProfile {
        latency: ms(5),
        ..Default::default()
    };
    let pair = Pair::start(probe::pair_network(&p, &back), 1).unwrap();
    let r = probe::tcp_bulk(
        &pair.a,
        &pair.b,
        Duration::from_secs(4),
        Duration::from_secs(1),
        Some("cubic"),
    )
    .unwrap();
    pair.stop().unwrap();
    let mbit = r.goodput_bps / 1e6;
    assert!(
        (7.0..10.5).contains(&mbit),
        "10 Mbit/s link carried {mbit:.2} Mbit/s of TCP"
    );
}

#[test]
fn loss_is_counted_by_the_receiver() {
    require_privileges();
    let p = LinkProfile {
        loss: Some(Percent(20.0)),
        ..Default::default()
    };
    let pair = Pair::start(probe::pair_network(&p, &LinkProfile::default()), 3).unwrap();
    let c = probe::udp_count(
        &pair.a,
        &pair.b,
        2_000,
        100,
        Duration::from_micros(200),
        Duration::from_millis(300),
    )
    .unwrap();
    let stats = pair.stop().unwrap();
    // 2000 at 20 %: sd ≈ 0.9 %; ±5 % is > 5 sd.
    assert!((0.15..0.25).contains(&c.loss()), "measured {:.3}", c.loss());
    assert_eq!(
        c.sent - c.received,
        stats.core.dropped_loss,
        "every drop is the shaper's"
    );
}

fn count_arrivals(pair: &Pair, rx: &UdpSocket, n: u64) -> u64 {
    let tx = pair
        .a
        .run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    let dst = SocketAddrV4::new(pair.b.addr(), 7010);
    let s0 = pair.sim.stats().unwrap();
    for _ in 0..n {
        tx.send_to(b"x", dst).unwrap();
    }
    // Wait (generously) until the shaper has read every packet and holds none.
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = pair.sim.stats().unwrap();
        if s.read - s0.read >= n && s.in_flight == 0 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the shaper never read the packets: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let written = s.written - s0.written;
    let mut buf = [0u8; 8];
    for _ in 0..written {
        rx.recv(&mut buf).expect("a datagram the shaper wrote");
    }
    assert!(
        rx.recv(&mut buf).is_err(),
        "no more datagrams than the shaper wrote"
    );
    written
}

#[test]
fn partitions_cut_and_heal_both_directly_and_as_timed_events() {
    require_privileges();
    let network: Network = serde_saphyr::from_str(
        "events: [{ at: 0s, partition: { name: cut, groups: [[a], [b]] } }, { at: 1h, heal: all }]",
    )
    .unwrap();
    let pair = Pair::start(network, 1).unwrap();
    let rx = pair
        .b
        .run_in(|| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7010)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let before = pair.sim.stats().unwrap().written;
    assert_eq!(
        count_arrivals(&pair, &rx, 20),
        20,
        "before the events start"
    );
    pair.sim.start_events().unwrap();
    pair.sim.stats().unwrap(); // a barrier: the shaper has applied the 0 s partition
    assert_eq!(count_arrivals(&pair, &rx, 20), 0, "partitioned");
    pair.sim
        .apply(Action::Heal {
            name: Some("cut".into()),
        })
        .unwrap();
    assert_eq!(count_arrivals(&pair, &rx, 20), 20, "healed");
    let s = pair.stop().unwrap();
    assert_eq!(s.core.dropped_partition, 20);
    assert_eq!(s.written - before, 40);
}

#[test]
fn stop_leaves_no_namespace_and_no_process() {
    require_privileges();
    let sim = Netsim::start(NetsimConfig::new(Network::default(), vec!["g".into()], 1)).unwrap();
    let mut inodes = Vec::new();
    let mut children = Vec::new();
    for i in 0..3 {
        let n = sim.add_node(i, "g").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        n.configure(&mut cmd);
        children.push(cmd.spawn().unwrap());
        inodes.push(n.netns_inode());
    }
    assert!(inodes.iter().all(|i| live_netns_inodes().contains(i)));
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert_eq!(sim.stop().unwrap().nodes, 3);
    let live = live_netns_inodes();
    assert!(
        inodes.iter().all(|i| !live.contains(i)),
        "namespaces {inodes:?} still referenced"
    );
}

/// PIDs of live (not zombie) processes.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn kill_9_of_the_owner_leaves_nothing_behind() {
    require_privileges();
    let mut holder = Command::new(env!("CARGO_BIN_EXE_netsim-probe"))
        .args(["hold", "--nodes", "3"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("hold prints what it made");
    let children: Vec<u32> = v["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as u32)
        .collect();
    let inodes: Vec<u64> = v["netns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!((children.len(), inodes.len()), (3, 3));
    assert!(children.iter().all(|&c| alive(c)));
    assert!(inodes.iter().all(|i| live_netns_inodes().contains(i)));

    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    // The kernel does the cleanup asynchronously; wait (generously) for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let procs_left: Vec<u32> = children.iter().copied().filter(|&c| alive(c)).collect();
        let live = live_netns_inodes();
        let ns_left: Vec<u64> = inodes
            .iter()
            .copied()
            .filter(|i| live.contains(i))
            .collect();
        if procs_left.is_empty() && ns_left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind after kill -9: processes {procs_left:?}, namespaces {ns_left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unknown_groups_and_duplicate_nodes_are_refused() {
    require_privileges();
    let sim = Netsim::start(NetsimConfig::new(Network::default(), vec!["g".into()], 1)).unwrap();
    let e = sim.add_node(0, "nope").unwrap_err().to_string();
    assert!(e.contains("unknown group `nope`"), "{e}");
    let _n = sim.add_node(0, "g").unwrap();
    let e = sim.add_node(0, "g").unwrap_err().to_string();
    assert!(e.contains("already registered"), "{e}");
    sim.stop().unwrap();
}
