//! One direction of one node pair: its model (numbers derived from [`LinkParams`]) and its
//! state (RNG stream, Gilbert loss state, token bucket, last release time).

use super::Nanos;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use testbed_contract::plan::{JitterDistribution, LinkParams};

/// Largest IP packet the queue floor is sized for (two of them always fit).
const FULL_PACKET_BYTES: u64 = 1500;

/// Shape parameter of the Pareto jitter (finite mean and variance).
const PARETO_SHAPE: f64 = 3.0;

/// The numbers the scheduler needs for one direction between two groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    pub params: LinkParams,
    latency_ns: f64,
    jitter_ns: f64,
    /// Gilbert model: P(good → bad) and P(bad → good) per packet.
    p_good_bad: f64,
    p_bad_good: f64,
    /// Nanoseconds to send one byte, 0 when unlimited.
    ns_per_byte: f64,
    /// Longest wait for the token bucket before a packet is dropped.
    queue_ns: Nanos,
}

impl LinkModel {
    pub fn new(params: LinkParams) -> LinkModel {
        let loss = (params.loss / 100.0).clamp(0.0, 1.0);
        let corr = (params.loss_correlation / 100.0).clamp(0.0, 0.999_999);
        let (ns_per_byte, queue_ns) = match params.bandwidth.bits_per_sec() {
            None => (0.0, 0),
            Some(bps) => {
                let ns_per_byte = 8e9 / bps as f64;
                let floor = (2.0 * FULL_PACKET_BYTES as f64 * ns_per_byte) as Nanos;
                (ns_per_byte, (params.queue.as_nanos() as Nanos).max(floor))
            }
        };
        LinkModel {
            params,
            latency_ns: params.latency.as_nanos() as f64,
            jitter_ns: params.jitter.as_nanos() as f64,
            // Stationary P(bad) = p/(p+r) = loss; lag-1 correlation of the loss indicator =
            // 1 - p - r = corr. With corr = 0 this is independent (Bernoulli) loss.
            p_good_bad: loss * (1.0 - corr),
            p_bad_good: (1.0 - loss) * (1.0 - corr),
            ns_per_byte,
            queue_ns,
        }
    }

    pub fn has_bandwidth_limit(&self) -> bool {
        self.ns_per_byte > 0.0
    }

    /// Serialization time of `len` bytes at the link's rate.
    pub fn tx_time(&self, len: usize) -> Nanos {
        (len as f64 * self.ns_per_byte).round() as Nanos
    }
}

/// What happened to a packet on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    Lost,
    QueueFull,
    /// Leaves the link (reaches the destination) at this time.
    Release(Nanos),
}

/// Mutable state of one direction of one node pair.
#[derive(Debug, Clone)]
pub struct LinkState {
    rng: ChaCha8Rng,
    /// Gilbert loss state.
    bad: bool,
    /// Token bucket: the time the link finishes sending what it already holds.
    busy_until: Nanos,
    /// Release time of the latest packet, to keep FIFO order.
    last_release: Nanos,
}

impl LinkState {
    /// A fresh link whose random stream depends only on the seed and the pair (`stream`), so
    /// the k-th packet of a pair meets the same fate whatever the other pairs do.
    pub fn new(seed: u64, stream: u64) -> LinkState {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        LinkState {
            rng,
            bad: false,
            busy_until: 0,
            last_release: 0,
        }
    }

    /// Sends a packet of `len` bytes arriving at `now` through the link.
    pub fn send(&mut self, m: &LinkModel, now: Nanos, len: usize) -> LinkOutcome {
        // Loss: one draw per packet, always (so later draws do not depend on the loss setting).
        let u: f64 = self.rng.random();
        self.bad = if self.bad {
            u >= m.p_bad_good
        } else {
            u < m.p_good_bad
        };
        // Jitter: drawn for every packet as well, for the same reason.
        let jitter = self.jitter(m);
        if self.bad {
            return LinkOutcome::Lost;
        }
        // Token bucket with no burst: the packet starts when the link is free, leaves when its
        // last byte is sent. Packets that would wait longer than the queue allows are dropped.
        let departs = if m.has_bandwidth_limit() {
            let start = now.max(self.busy_until);
            if start - now > m.queue_ns {
                return LinkOutcome::QueueFull;
            }
            self.busy_until = start + m.tx_time(len);
            self.busy_until
        } else {
            now
        };
        let delay = (m.latency_ns + jitter).max(0.0).round() as Nanos;
        let mut release = departs + delay;
        if !m.params.reorder {
            release = release.max(self.last_release);
        }
        self.last_release = self.last_release.max(release);
        LinkOutcome::Release(release)
    }

    /// A jitter sample in nanoseconds, mean zero, for the link's distribution.
    fn jitter(&mut self, m: &LinkModel) -> f64 {
        let j = m.jitter_ns;
        let u1: f64 = self.rng.random();
        let u2: f64 = self.rng.random();
        if j == 0.0 {
            return 0.0;
        }
        match m.params.jitter_distribution {
            JitterDistribution::Uniform => j * (2.0 * u1 - 1.0),
            JitterDistribution::Normal => {
                // Box–Muller; 1 - u1 is in (0, 1].
                let r = (-2.0 * (1.0 - u1).ln()).sqrt();
                j * r * (std::f64::consts::TAU * u2).cos()
            }
            JitterDistribution::Pareto => {
                // Pareto(x_m, a) has mean x_m·a/(a−1); pick x_m so the mean is j, then centre.
                let a = PARETO_SHAPE;
                let x_m = j * (a - 1.0) / a;
                x_m / (1.0 - u1).powf(1.0 / a) - j
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use testbed_contract::plan::Bandwidth;

    fn model(f: impl FnOnce(&mut LinkParams)) -> LinkModel {
        let mut p = LinkParams::default();
        f(&mut p);
        LinkModel::new(p)
    }

    #[test]
    fn jitter_distributions_have_mean_zero_and_their_spread() {
        for (dist, sd_over_j) in [
            (JitterDistribution::Uniform, 1.0 / 3f64.sqrt()),
            (JitterDistribution::Normal, 1.0),
            // Pareto(a=3) sd = x_m·sqrt(a/((a−1)²(a−2))) = (2/3)·sqrt(3/4) ≈ 0.577 (of j).
            (JitterDistribution::Pareto, (2.0 / 3.0) * (0.75f64).sqrt()),
        ] {
            let m = model(|p| {
                p.latency = Duration::from_millis(100);
                p.jitter = Duration::from_millis(10);
                p.jitter_distribution = dist;
                p.reorder = true;
            });
            let mut s = LinkState::new(7, 1);
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| s.jitter(&m)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            let j = 10e6;
            assert!(mean.abs() < 0.02 * j, "{dist:?} mean {mean}");
            // Pareto's sample sd converges slowly (infinite fourth moment): allow 15 %.
            assert!(
                (sd / j - sd_over_j).abs() < 0.15 * sd_over_j,
                "{dist:?} sd {} vs {sd_over_j}",
                sd / j
            );
            if dist == JitterDistribution::Uniform {
                assert!(xs.iter().all(|x| x.abs() <= j));
            }
            if dist == JitterDistribution::Pareto {
                assert!(xs.iter().all(|x| *x >= -j / 3.0 - 1.0));
            }
        }
    }

    #[test]
    fn queue_floor_holds_two_full_packets() {
        let m = model(|p| {
            p.bandwidth = Bandwidth::BitsPerSec(8_000);
            p.queue = Duration::from_millis(1);
        });
        // 1500 B at 8 kbit/s = 1.5 s per packet; the floor is 3 s.
        assert_eq!(m.queue_ns, 3_000_000_000);
        assert_eq!(m.tx_time(1500), 1_500_000_000);
    }
}
