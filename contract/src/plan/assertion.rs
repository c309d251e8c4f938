//! Pass/fail conditions on the run's figures, written `metric op value`, e.g.
//! `delivery_ratio >= 1.0` or `latency_p99_ms <= 250`. A yes/no metric (`host_saturated`)
//! compares with `true` or `false` (1 and 0).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    DeliveryRatio,
    LatencyP50Ms,
    LatencyP90Ms,
    LatencyP99Ms,
    LatencyMaxMs,
    Duplicates,
    FailedNodes,
    ReadyTimeMs,
    PeakRssMibMax,
    /// Whether the host's CPU was saturated during the measurement window (1 or 0).
    HostSaturated,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::DeliveryRatio,
        Metric::LatencyP50Ms,
        Metric::LatencyP90Ms,
        Metric::LatencyP99Ms,
        Metric::LatencyMaxMs,
        Metric::Duplicates,
        Metric::FailedNodes,
        Metric::ReadyTimeMs,
        Metric::PeakRssMibMax,
        Metric::HostSaturated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::DeliveryRatio => "delivery_ratio",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP90Ms => "latency_p90_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
            Metric::LatencyMaxMs => "latency_max_ms",
            Metric::Duplicates => "duplicates",
            Metric::FailedNodes => "failed_nodes",
            Metric::ReadyTimeMs => "ready_time_ms",
            Metric::PeakRssMibMax => "peak_rss_mib_max",
            Metric::HostSaturated => "host_saturated",
        }
    }

    /// A yes/no metric: its values are 1 (true) and 0 (false).
    pub fn is_flag(self) -> bool {
        self == Metric::HostSaturated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Eq => "==",
        }
    }

    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Ge => left >= right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Lt => left < right,
            Op::Eq => (left - right).abs() <= f64::EPSILON * left.abs().max(1.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assertion {
    pub metric: Metric,
    pub op: Op,
    pub value: f64,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, op) = (self.metric.name(), self.op.symbol());
        if self.metric.is_flag() && (self.value == 0.0 || self.value == 1.0) {
            write!(f, "{m} {op} {}", self.value == 1.0)
        } else {
            write!(f, "{m} {op} {}", self.value)
        }
    }
}

impl std::str::FromStr for Assertion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let metrics = Metric::ALL.map(Metric::name).join(", ");
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [metric, op, value] = parts[..] else {
            return Err(format!(
                "invalid assertion `{text}`: write `metric op value`, e.g. `delivery_ratio >= 1.0`"
            ));
        };
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.name() == metric)
            .ok_or_else(|| format!("unknown metric `{metric}` in assertion; known: {metrics}"))?;
        let op = [Op::Ge, Op::Le, Op::Gt, Op::Lt, Op::Eq]
            .into_iter()
            .find(|o| o.symbol() == op)
            .ok_or_else(|| {
                format!("unknown operator `{op}` in assertion; use >=, <=, >, < or ==")
            })?;
        let value: f64 = match value {
            "true" => Ok(1.0),
            "false" => Ok(0.0),
            v => v.parse(),
        }
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("assertion value `{value}` is not a number"))?;
        Ok(Assertion { metric, op, value })
    }
}

impl Serialize for Assertion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Assertion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let a: Assertion = "delivery_ratio >= 1.0".parse().unwrap();
        assert!(a.op.holds(1.0, a.value));
        assert!(!a.op.holds(0.99, a.value));
        assert!("latency_p99_ms <= x".parse::<Assertion>().is_err());
        assert!(
            "speed >= 1"
                .parse::<Assertion>()
                .unwrap_err()
                .contains("known:")
        );
        assert!("delivery_ratio => 1".parse::<Assertion>().is_err());
        let h: Assertion = "host_saturated == false".parse().unwrap();
        assert_eq!((h.metric, h.value), (Metric::HostSaturated, 0.0));
        assert_eq!(h.to_string(), "host_saturated == false");
        assert!(h.op.holds(0.0, h.value) && !h.op.holds(1.0, h.value));
    }
}
