use super::*;
use std::time::Duration;
use testbed_contract::plan::{Bandwidth, JitterDistribution};

const MS: Nanos = 1_000_000;
const S: Nanos = 1_000_000_000;

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn net(yaml: &str) -> Network {
    serde_saphyr::from_str(yaml).expect("test yaml")
}

/// A core with `per_group` nodes in each of `names`; node ids are `g * per_group + k`.
fn core<P>(yaml: &str, names: &[&str], per_group: u32, seed: u64) -> Core<P> {
    let mut c = Core::new(&net(yaml), &groups(names), seed).unwrap();
    for g in 0..names.len() as u32 {
        for k in 0..per_group {
            c.add_node(g * per_group + k, g as GroupIdx);
        }
    }
    c
}

fn drain<P>(c: &mut Core<P>) -> Vec<Released<P>> {
    let mut out = Vec::new();
    while let Some(r) = c.pop_due(Nanos::MAX) {
        out.push(r);
    }
    out
}

#[test]
fn a_plain_latency_releases_exactly_after_it() {
    let mut c = core::<u32>("default: { latency: 20ms }", &["a", "b"], 1, 1);
    assert_eq!(c.submit(5 * MS, 0, 1, 100, 7), Verdict::Scheduled(25 * MS));
    assert_eq!(c.next_deadline(), Some(25 * MS));
    assert!(c.pop_due(25 * MS - 1).is_none());
    let r = c.pop_due(25 * MS).unwrap();
    assert_eq!((r.at, r.src, r.dst, r.payload), (25 * MS, 0, 1, 7));
    assert_eq!(c.next_deadline(), None);
    let s = c.stats();
    assert_eq!((s.submitted, s.released, s.released_bytes), (1, 1, 100));
}

#[test]
fn packets_come_out_in_release_order_and_fifo_per_link() {
    // Jitter (±15 ms) larger than the spacing (1 ms) would reorder; FIFO keeps order per link.
    let mut c = core::<(u32, u32)>(
        "default: { latency: 30ms, jitter: 15ms, jitter_distribution: normal }",
        &["a", "b"],
        2,
        3,
    );
    for i in 0..2_000u32 {
        let (src, dst) = [(0, 2), (1, 2), (2, 0), (3, 1)][i as usize % 4];
        c.submit(i as Nanos * MS / 4, src, dst, 100, (src, i));
    }
    let out = drain(&mut c);
    assert_eq!(out.len(), 2_000);
    assert!(
        out.windows(2).all(|w| w[0].at <= w[1].at),
        "global release order"
    );
    for src in 0..4 {
        let seq: Vec<u32> = out
            .iter()
            .filter(|r| r.payload.0 == src)
            .map(|r| r.payload.1)
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "FIFO on links from node {src}"
        );
    }
}

#[test]
fn reorder_true_lets_jitter_reorder() {
    let mut c = core::<u32>(
        "default: { latency: 30ms, jitter: 15ms, reorder: true }",
        &["a", "b"],
        1,
        3,
    );
    for i in 0..1_000u32 {
        c.submit(i as Nanos * MS, 0, 1, 100, i);
    }
    let seq: Vec<u32> = drain(&mut c).into_iter().map(|r| r.payload).collect();
    let inversions = seq.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 100, "{inversions} inversions");
}

#[test]
fn fifo_clamping_only_delays_packets_never_advances_them() {
    let mut c = core::<u32>(
        "default: { latency: 30ms, jitter: 10ms }",
        &["a", "b"],
        1,
        9,
    );
    for i in 0..5_000u32 {
        let now = i as Nanos * MS / 2;
        let Verdict::Scheduled(at) = c.submit(now, 0, 1, 100, i) else {
            panic!()
        };
        assert!(
            at >= now + 20 * MS,
            "uniform jitter never goes below latency - jitter"
        );
    }
}

#[test]
fn token_bucket_releases_at_the_configured_rate() {
    for (bw, bps) in [("1Mbit", 1e6), ("10Mbit", 1e7), ("100Mbit", 1e8)] {
        let mut c = core::<()>(
            &format!("default: {{ latency: 10ms, bandwidth: {bw}, queue: 10s }}"),
            &["a", "b"],
            1,
            1,
        );
        // Offer 3× the rate for 2 s of link time, in 1500-byte packets.
        let pkt = 1500usize;
        let interval = (pkt as f64 * 8.0 / bps / 3.0 * 1e9) as Nanos;
        let n = (2.0 * bps / (pkt as f64 * 8.0)) as usize;
        for i in 0..n {
            assert!(matches!(
                c.submit(i as Nanos * interval, 0, 1, pkt, ()),
                Verdict::Scheduled(_)
            ));
        }
        let out = drain(&mut c);
        let first = out.first().unwrap().at;
        let last = out.last().unwrap().at;
        let rate = (out.len() - 1) as f64 * pkt as f64 * 8.0 / ((last - first) as f64 / 1e9);
        assert!(
            (rate / bps - 1.0).abs() < 1e-3,
            "{bw}: measured {rate} bit/s"
        );
        // The first packet: serialization time plus latency.
        assert_eq!(
            first,
            (pkt as f64 * 8.0 / bps * 1e9).round() as Nanos + 10 * MS
        );
    }
}

#[test]
fn a_full_queue_drops_the_excess() {
    // 8 Mbit/s = 1 byte/µs; queue 50 ms = 50 kB. Offer 2× the rate for 1 s.
    let mut c = core::<()>(
        "default: { bandwidth: 8Mbit, queue: 50ms }",
        &["a", "b"],
        1,
        1,
    );
    let pkt = 1000usize;
    let mut queued = 0;
    for i in 0..2_000u64 {
        if let Verdict::Scheduled(at) = c.submit(i * 500_000, 0, 1, pkt, ()) {
            queued += 1;
            assert!(
                at - i * 500_000 <= 51 * MS,
                "no packet waits more than queue + its own tx"
            );
        }
    }
    // Link time 1 s carries 1000 packets, plus what the 50 ms queue holds at the end.
    assert!((1_040..=1_060).contains(&queued), "queued {queued}");
    assert_eq!(c.stats().dropped_queue, 2_000 - queued);
}

#[test]
fn bandwidth_is_per_direction_and_per_node_pair() {
    let mut c = core::<()>("default: { bandwidth: 8Mbit }", &["a", "b"], 2, 1);
    // Same instant, four different directed pairs: none waits for another.
    let v: Vec<Verdict> = [(0, 2), (1, 2), (2, 0), (0, 3)]
        .iter()
        .map(|&(s, d)| c.submit(0, s, d, 1000, ()))
        .collect();
    assert!(v.iter().all(|x| *x == Verdict::Scheduled(MS)), "{v:?}");
    assert_eq!(c.submit(0, 0, 2, 1000, ()), Verdict::Scheduled(2 * MS));
}

/// Loss rate within a 99.9 % binomial interval (|z| < 3.3) for independent loss.
#[test]
fn loss_rate_is_within_its_binomial_interval() {
    for (p, seed) in [(1.0, 1), (5.0, 2), (20.0, 3), (50.0, 4)] {
        let mut c = core::<()>(&format!("default: {{ loss: {p} }}"), &["a", "b"], 1, seed);
        let n = 100_000u64;
        for i in 0..n {
            c.submit(i * 1_000, 0, 1, 100, ());
        }
        let lost = c.stats().dropped_loss as f64;
        let q = p / 100.0;
        let sd = (n as f64 * q * (1.0 - q)).sqrt();
        let z = (lost - n as f64 * q) / sd;
        assert!(z.abs() < 3.3, "loss {p}%: lost {lost} of {n}, z = {z:.2}");
        assert_eq!(c.stats().released, 0, "nothing popped yet");
    }
}

#[test]
fn independent_loss_has_no_memory_and_correlated_loss_comes_in_bursts() {
    let run = |yaml: &str| {
        let mut c = core::<()>(yaml, &["a", "b"], 1, 5);
        (0..200_000u64)
            .map(|i| matches!(c.submit(i * 1_000, 0, 1, 100, ()), Verdict::Dropped(_)))
            .collect::<Vec<bool>>()
    };
    let stats = |xs: &[bool]| {
        let n = xs.len() as f64;
        let rate = xs.iter().filter(|&&x| x).count() as f64 / n;
        let after_loss = xs.windows(2).filter(|w| w[0]).count() as f64;
        let both = xs.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        (rate, both / after_loss)
    };
    let (rate, p_ll) = stats(&run("default: { loss: 10 }"));
    assert!(
        (rate - 0.10).abs() < 0.005 && (p_ll - 0.10).abs() < 0.01,
        "{rate} {p_ll}"
    );
    // Correlation 50 %: same mean, P(loss | loss) = loss + corr·(1 − loss) = 0.55.
    let (rate, p_ll) = stats(&run("default: { loss: 10, loss_correlation: 50 }"));
    assert!(
        (rate - 0.10).abs() < 0.01 && (p_ll - 0.55).abs() < 0.02,
        "{rate} {p_ll}"
    );
}

#[test]
fn partitions_cut_between_sets_only_and_heal() {
    let mut c = core::<()>("{}", &["a", "b", "c", "d"], 1, 1);
    let groups = groups(&["a", "b", "c", "d"]);
    let ev: Network = net(
        "events: [{ at: 0s, partition: { name: p1, groups: [[a], [b, c]] } }, { at: 0s, heal: { partition: p1 } }]",
    );
    let cut = Action::from_event(&ev.events[0], &groups, 0).unwrap();
    let heal_p1 = Action::from_event(&ev.events[1], &groups, 1).unwrap();
    c.apply(&cut);
    let fate = |c: &mut Core<()>, s, d| matches!(c.submit(0, s, d, 10, ()), Verdict::Scheduled(_));
    assert!(!fate(&mut c, 0, 1) && !fate(&mut c, 1, 0) && !fate(&mut c, 2, 0));
    assert!(fate(&mut c, 1, 2), "inside a set");
    assert!(
        fate(&mut c, 0, 3) && fate(&mut c, 3, 1),
        "group d is not listed"
    );
    assert!(fate(&mut c, 0, 0));
    // A second, unnamed partition; healing p1 leaves it.
    c.apply(&Action::Partition {
        name: None,
        side: vec![None, None, Some(0), Some(1)],
    });
    c.apply(&heal_p1);
    assert!(fate(&mut c, 0, 1) && !fate(&mut c, 2, 3));
    c.apply(&Action::Heal { name: None });
    assert!(fate(&mut c, 2, 3));
    assert_eq!(c.stats().dropped_partition, 4);
}

#[test]
fn timed_events_start_at_their_zero_and_cut_packets_in_flight() {
    let mut c = core::<u32>(
        r#"
default: { latency: 50ms }
events:
  - { at: 1s, partition: { groups: [[a], [b]] } }
  - { at: 2s, heal: all }
  - { at: 3s, set_link: { from: a, to: b, symmetric: false, latency: 5ms } }
"#,
        &["a", "b"],
        1,
        1,
    );
    // Before start_events nothing happens, whatever the time.
    assert!(matches!(
        c.submit(10 * S, 0, 1, 10, 0),
        Verdict::Scheduled(_)
    ));
    drain(&mut c);
    let zero = 20 * S;
    c.start_events(zero);
    assert_eq!(c.next_deadline(), Some(zero + S));
    // Sent 20 ms before the cut, due 30 ms after it: dropped on release.
    assert_eq!(
        c.submit(zero + S - 20 * MS, 0, 1, 10, 1),
        Verdict::Scheduled(zero + S + 30 * MS)
    );
    // Sent 60 ms before the cut, due before it: delivered.
    assert!(matches!(
        c.submit(zero + S - 60 * MS, 1, 0, 10, 2),
        Verdict::Scheduled(_)
    ));
    let mut dropped = Vec::new();
    let mut out = Vec::new();
    while let Some(r) = c.pop_due_with(zero + S + 40 * MS, |why, p| dropped.push((why, p))) {
        out.push(r.payload);
    }
    assert_eq!(out, [2]);
    assert_eq!(dropped, [(DropReason::Partition, 1)]);
    assert_eq!(
        c.submit(zero + S + 500 * MS, 0, 1, 10, 3),
        Verdict::Dropped(DropReason::Partition)
    );
    // Healed at 2 s; at 3 s a → b becomes 5 ms, b → a stays 50 ms.
    assert_eq!(
        c.submit(zero + 2 * S, 0, 1, 10, 4),
        Verdict::Scheduled(zero + 2 * S + 50 * MS)
    );
    c.advance(zero + 3 * S);
    assert_eq!(
        c.submit(zero + 3 * S, 0, 1, 10, 5),
        Verdict::Scheduled(zero + 3 * S + 5 * MS)
    );
    assert_eq!(
        c.submit(zero + 3 * S, 1, 0, 10, 6),
        Verdict::Scheduled(zero + 3 * S + 50 * MS)
    );
    assert_eq!(c.link_params(0, 1).latency, Duration::from_millis(5));
    assert_eq!(c.stats().events_applied, 3);
    assert_eq!(
        c.next_deadline(),
        Some(zero + 2 * S + 50 * MS),
        "packet 4 is still held"
    );
}

#[test]
fn set_link_patches_and_does_not_move_packets_in_flight() {
    let mut c = core::<u32>("default: { latency: 100ms, loss: 0 }", &["a", "b"], 1, 1);
    assert_eq!(c.submit(0, 0, 1, 10, 0), Verdict::Scheduled(100 * MS));
    c.apply(&Action::SetLink {
        directions: vec![(0, 1)],
        patch: LinkProfile {
            latency: Some(Duration::from_millis(10)),
            jitter_distribution: Some(JitterDistribution::Normal),
            ..Default::default()
        },
    });
    // FIFO: the new, shorter latency does not let a packet overtake the held one.
    assert_eq!(c.submit(MS, 0, 1, 10, 1), Verdict::Scheduled(100 * MS));
    assert_eq!(
        c.submit(200 * MS, 0, 1, 10, 2),
        Verdict::Scheduled(210 * MS)
    );
    let p = c.link_params(0, 1);
    assert_eq!(
        (p.jitter_distribution, p.bandwidth),
        (JitterDistribution::Normal, Bandwidth::Unlimited)
    );
}

#[test]
fn unknown_and_removed_nodes_are_dropped() {
    let mut c = core::<u32>("default: { latency: 10ms }", &["a"], 2, 1);
    assert_eq!(
        c.submit(0, 0, 9, 10, 0),
        Verdict::Dropped(DropReason::UnknownNode)
    );
    assert!(matches!(c.submit(0, 0, 1, 10, 1), Verdict::Scheduled(_)));
    c.remove_node(1);
    assert!(
        c.pop_due(S).is_none(),
        "held packet to a removed node is dropped"
    );
    assert_eq!(c.stats().dropped_unknown, 2);
}

#[test]
fn unknown_groups_in_events_are_refused() {
    let n = net("events: [{ at: 1s, partition: { groups: [[a], [zz]] } }]");
    let e = Core::<()>::new(&n, &groups(&["a", "b"]), 1).err().unwrap();
    assert_eq!(e, CoreError::UnknownGroup("zz".into(), "a, b".into()));
    assert!(Core::<()>::new(&net("links: [{ from: a, to: q }]"), &groups(&["a"]), 1).is_err());
}

fn trace(seed: u64, extra_link: bool) -> Vec<Verdict> {
    let mut c = core::<()>(
        "default: { latency: 20ms, jitter: 5ms, jitter_distribution: pareto, loss: 10, loss_correlation: 20, bandwidth: 10Mbit }",
        &["a", "b"],
        2,
        seed,
    );
    let mut v = Vec::new();
    for i in 0..5_000u64 {
        v.push(c.submit(i * 100_000, 0, 2, 200 + (i % 1300) as usize, ()));
        if extra_link {
            c.submit(i * 100_000 + 7, 1, 3, 1400, ());
        }
    }
    v
}

#[test]
fn the_same_seed_and_inputs_give_the_same_run() {
    assert_eq!(trace(42, false), trace(42, false));
    assert_ne!(trace(42, false), trace(43, false));
    // Each node pair has its own random stream: traffic elsewhere does not change its fate.
    assert_eq!(trace(42, false), trace(42, true));
}
