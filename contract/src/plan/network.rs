//! The plan's `network` section: how the `netns` runner's user-space shaper treats the traffic
//! between groups. Every direction of every link is shaped on its own: a default profile, per
//! group-pair overrides (`links`), a `regions` shorthand that sets latency from an RTT matrix,
//! and timed `events` (partition, heal, set a link).
//!
//! ```yaml
//! network:
//!   default: { latency: 10ms, jitter: 1ms, loss: 0.1, bandwidth: 100Mbit }
//!   regions:
//!     eu:   { groups: [eu], rtt: { us: 80ms, asia: 160ms } }
//!     us:   { groups: [us], rtt: { asia: 120ms } }
//!     asia: { groups: [asia] }
//!   links:
//!     - { from: eu, to: us, symmetric: false, loss: 2 }
//!   events:
//!     - { at: 20s, partition: { name: eu-cut, groups: [[eu], [us, asia]] } }
//!     - { at: 30s, heal: all }
//!     - { at: 40s, set_link: { from: us, to: asia, latency: 90ms } }
//! ```
//!
//! Resolution of the profile of a direction `from → to` (see [`Network::link_params`]):
//! built-in defaults, patched by `default`, then by the regions' RTT (one-way latency =
//! RTT / 2), then by every matching entry of `links` in order (later entries win field by field).
//! Fields a profile leaves out keep the value from the layer below.

use crate::duration::{human, human_opt};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Largest latency, jitter or queue a plan may ask for; more is certainly a typo.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Smallest and largest bandwidth the shaper is asked to emulate, bits per second.
pub const MIN_BANDWIDTH_BPS: u64 = 8_000;
pub const MAX_BANDWIDTH_BPS: u64 = 100_000_000_000;

/// Network emulation (latency, jitter, loss, bandwidth, partitions) for the `netns` runner.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Profile of every direction of every link, unless a region or a `links` entry says
    /// otherwise. Absent: no delay, no loss, unlimited bandwidth.
    #[serde(default, skip_serializing_if = "LinkProfile::is_empty")]
    pub default: LinkProfile,
    /// Per group-pair overrides, applied in order on top of `default` and `regions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkOverride>,
    /// Region name → the groups placed there and the RTT to other regions. Between two
    /// different regions an RTT must be given (in either region's `rtt`); inside a region the
    /// `rtt` to itself is optional (default: the default profile's latency).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, Region>,
    /// Timed changes, `at` counted from the moment the whole fleet has been launched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NetworkEvent>,
}

/// A link profile as written in a plan: every field optional, so it can patch another one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkProfile {
    /// One-way delay, e.g. `20ms`.
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// Spread of the delay around `latency` (see `jitter_distribution`).
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_distribution: Option<JitterDistribution>,
    /// Packet loss, percent (`1`, `0.5`, or `"1%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    /// Burstiness of the loss, percent: the correlation between one packet's fate and the
    /// next one's (a Gilbert model with the same mean loss). 0 = independent losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_correlation: Option<Percent>,
    /// Rate of the link in bits per second of IP packets: `500kbit`, `10Mbit`, `1Gbit`, or
    /// `unlimited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// How long a packet may wait for `bandwidth` before it is dropped (the link's buffer,
    /// expressed in time at the link's rate). Default 100ms, never less than two full packets.
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub queue: Option<Duration>,
    /// Let jitter reorder packets. Default false: a packet never overtakes an earlier one on
    /// the same direction of the same node pair (like a real path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
}

impl LinkProfile {
    pub fn is_empty(&self) -> bool {
        *self == LinkProfile::default()
    }

    /// Checks the values (ranges only); `path` is where this profile sits, e.g. `network.default`.
    fn validate(&self, path: &str, issues: &mut Vec<NetworkIssue>) {
        for (field, value) in [
            ("latency", self.latency),
            ("jitter", self.jitter),
            ("queue", self.queue),
        ] {
            if let Some(v) = value
                && v > MAX_DELAY
            {
                issues.push(NetworkIssue::new(
                    format!("{path}.{field}"),
                    format!(
                        "{} is more than the {}s a link may take; write a smaller duration",
                        humantime::format_duration(v),
                        MAX_DELAY.as_secs()
                    ),
                ));
            }
        }
        if self.queue == Some(Duration::ZERO) {
            issues.push(NetworkIssue::new(
                format!("{path}.queue"),
                "a zero queue would drop every packet that has to wait; write e.g. `50ms`".into(),
            ));
        }
        if let Some(Percent(p)) = self.loss
            && !(0.0..=100.0).contains(&p)
        {
            issues.push(NetworkIssue::new(
                format!("{path}.loss"),
                format!("loss {p}% is outside 0..=100 (it is a percentage: `1` means 1%)"),
            ));
        }
        if let Some(Percent(c)) = self.loss_correlation
            && !(0.0..100.0).contains(&c)
        {
            issues.push(NetworkIssue::new(
                format!("{path}.loss_correlation"),
                format!("loss_correlation {c}% is outside 0..100 (100% would never change state)"),
            ));
        }
        if let Some(Bandwidth::BitsPerSec(b)) = self.bandwidth
            && !(MIN_BANDWIDTH_BPS..=MAX_BANDWIDTH_BPS).contains(&b)
        {
            issues.push(NetworkIssue::new(
                format!("{path}.bandwidth"),
                format!(
                    "{} is outside {}..={}; write e.g. `10Mbit`, or `unlimited`",
                    Bandwidth::BitsPerSec(b),
                    Bandwidth::BitsPerSec(MIN_BANDWIDTH_BPS),
                    Bandwidth::BitsPerSec(MAX_BANDWIDTH_BPS)
                ),
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JitterDistribution {
    /// Delay uniform in `latency ± jitter` (netem's default).
    #[default]
    Uniform,
    /// Delay normal with mean `latency` and standard deviation `jitter`.
    Normal,
    /// Heavy tail: delay = latency − jitter + Pareto(shape 3, mean `jitter`), so the mean stays
    /// `latency`, the minimum is `latency − jitter/3`, and rare packets are much later.
    Pareto,
}

impl JitterDistribution {
    pub fn as_str(self) -> &'static str {
        match self {
            JitterDistribution::Uniform => "uniform",
            JitterDistribution::Normal => "normal",
            JitterDistribution::Pareto => "pareto",
        }
    }
}

/// A percentage, written as a number (`1.5`) or a string with a percent sign (`"1.5%"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Percent(pub f64);

impl Percent {
    /// The fraction 0..=1.
    pub fn ratio(self) -> f64 {
        self.0 / 100.0
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as `1`, `0.5` or `\"2%\"`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percent, E> {
                Ok(Percent(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
                Ok(Percent(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
                Ok(Percent(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
                let t = v.trim();
                t.strip_suffix('%')
                    .unwrap_or(t)
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite())
                    .map(Percent)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "invalid percentage `{v}`; write a number such as `1`, `0.5` or `2%`"
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// A link rate. Written `500kbit`, `10Mbit`, `1.5Gbit` (decimal prefixes, bits per second,
/// `/s` allowed) or `unlimited`. Byte rates are refused rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bandwidth {
    Unlimited,
    BitsPerSec(u64),
}

impl Bandwidth {
    /// Bits per second, `None` when unlimited.
    pub fn bits_per_sec(self) -> Option<u64> {
        match self {
            Bandwidth::Unlimited => None,
            Bandwidth::BitsPerSec(b) => Some(b),
        }
    }

    pub fn parse(text: &str) -> Result<Bandwidth, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "invalid bandwidth `{text}`; write bits per second with a unit: `500kbit`, `10Mbit`, `1Gbit`, or `unlimited`"
            )
        };
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(Bandwidth::Unlimited);
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let num: f64 = num.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let unit = unit.strip_suffix("/s").unwrap_or(unit);
        let scale = match unit.to_ascii_lowercase().as_str() {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            "bps" | "kbps" | "mbps" | "gbps" | "b" | "kb" | "mb" | "gb" | "kib" | "mib" | "gib" => {
                return Err(format!(
                    "ambiguous bandwidth unit in `{text}`: write bits per second as `kbit`, `Mbit` or `Gbit` (e.g. `10Mbit`)"
                ));
            }
            _ => return Err(bad()),
        };
        let bps = (num * scale).round();
        if !bps.is_finite() || bps < 1.0 || bps > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Bandwidth::BitsPerSec(bps as u64))
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Bandwidth::Unlimited => f.write_str("unlimited"),
            Bandwidth::BitsPerSec(b) => {
                for (scale, unit) in [
                    (1_000_000_000, "Gbit"),
                    (1_000_000, "Mbit"),
                    (1_000, "kbit"),
                ] {
                    if b >= scale {
                        return if b % scale == 0 {
                            write!(f, "{}{unit}", b / scale)
                        } else {
                            write!(f, "{}{unit}", b as f64 / scale as f64)
                        };
                    }
                }
                write!(f, "{b}bit")
            }
        }
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Bandwidth::parse(&text).map_err(de::Error::custom)
    }
}

/// An override of the profile between two groups. The profile fields patch what the default
/// and the regions give; fields left out keep their value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// Sending group.
    pub from: String,
    /// Receiving group (may equal `from`: traffic inside the group).
    pub to: String,
    /// Also apply to `to → from` (default true).
    #[serde(default = "yes")]
    pub symmetric: bool,
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_distribution: Option<JitterDistribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_correlation: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(default, with = "human_opt", skip_serializing_if = "Option::is_none")]
    pub queue: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
}

fn yes() -> bool {
    true
}

impl LinkOverride {
    /// The profile fields of this override.
    pub fn profile(&self) -> LinkProfile {
        LinkProfile {
            latency: self.latency,
            jitter: self.jitter,
            jitter_distribution: self.jitter_distribution,
            loss: self.loss,
            loss_correlation: self.loss_correlation,
            bandwidth: self.bandwidth,
            queue: self.queue,
            reorder: self.reorder,
        }
    }

    /// Whether this override applies to the direction `from → to`.
    pub fn applies_to(&self, from: &str, to: &str) -> bool {
        (self.from == from && self.to == to)
            || (self.symmetric && self.from == to && self.to == from)
    }

    /// The directions it covers, as (from, to) pairs (one or two).
    pub fn directions(&self) -> Vec<(&str, &str)> {
        let mut d = vec![(self.from.as_str(), self.to.as_str())];
        if self.symmetric && self.from != self.to {
            d.push((self.to.as_str(), self.from.as_str()));
        }
        d
    }

    fn validate(&self, path: &str, groups: &[&str], issues: &mut Vec<NetworkIssue>) {
        for (field, g) in [("from", &self.from), ("to", &self.to)] {
            if !groups.contains(&g.as_str()) {
                issues.push(unknown_group(format!("{path}.{field}"), g, groups));
            }
        }
        self.profile().validate(path, issues);
    }
}

/// A region: groups placed there, and the round-trip time to other regions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub groups: Vec<String>,
    /// Region name → RTT (one-way latency is half of it, both ways). Give each pair once, in
    /// either region; the region's own name sets the RTT inside it.
    #[serde(
        default,
        with = "human_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub rtt: BTreeMap<String, Duration>,
}

mod human_map {
    use super::*;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&str, String> = m
            .iter()
            .map(|(k, v)| (k.as_str(), humantime::format_duration(*v).to_string()))
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                crate::duration::parse(&v)
                    .map(|d| (k, d))
                    .map_err(de::Error::custom)
            })
            .collect()
    }
}

/// A timed change of the network. Exactly one of `partition`, `heal`, `set_link`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkEvent {
    /// When, counted from the moment the whole fleet has been launched (before it connects).
    #[serde(with = "human")]
    pub at: Duration,
    /// Cut the listed sets of groups from each other (traffic inside a set, and traffic of
    /// groups not listed, is untouched). Partitions add up until healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Partition>,
    /// Undo partitions: `heal: all`, or `heal: { partition: NAME }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<Heal>,
    /// Change a link's profile from now on (patching its current profile; same fields as a
    /// `links` entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_link: Option<LinkOverride>,
}

/// What an event does, borrowed from a [`NetworkEvent`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventAction<'a> {
    Partition(&'a Partition),
    Heal(&'a Heal),
    SetLink(&'a LinkOverride),
}

impl NetworkEvent {
    /// The action, when exactly one is given (validation reports the other cases).
    pub fn action(&self) -> Option<EventAction<'_>> {
        match (&self.partition, &self.heal, &self.set_link) {
            (Some(p), None, None) => Some(EventAction::Partition(p)),
            (None, Some(h), None) => Some(EventAction::Heal(h)),
            (None, None, Some(s)) => Some(EventAction::SetLink(s)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Name, so that `heal: { partition: NAME }` can undo just this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At least two disjoint, non-empty sets of group ids.
    pub groups: Vec<Vec<String>>,
}

impl Partition {
    /// Whether this partition separates `a` from `b` (both listed, in different sets).
    pub fn separates(&self, a: &str, b: &str) -> bool {
        let side = |g: &str| self.groups.iter().position(|s| s.iter().any(|x| x == g));
        matches!((side(a), side(b)), (Some(x), Some(y)) if x != y)
    }
}

/// Which partitions a `heal` undoes: every one (`None`) or the one named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heal {
    pub partition: Option<String>,
}

impl Serialize for Heal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.partition {
            None => s.serialize_str("all"),
            Some(name) => {
                let mut m = BTreeMap::new();
                m.insert("partition", name);
                m.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Heal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Heal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`all` or `{ partition: NAME }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Heal, E> {
                if v.trim() == "all" {
                    Ok(Heal::default())
                } else {
                    Err(E::custom(format!(
                        "invalid heal `{v}`; write `heal: all` or `heal: {{ partition: NAME }}`"
                    )))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Heal, E> {
                Ok(Heal::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Heal, E> {
                Ok(Heal::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Heal, A::Error> {
                let mut heal = Heal::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "partition" => heal.partition = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["partition"])),
                    }
                }
                Ok(heal)
            }
        }
        d.deserialize_any(V)
    }
}

/// The concrete profile of one direction of a link, every value resolved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkParams {
    #[serde(with = "human")]
    pub latency: Duration,
    #[serde(with = "human")]
    pub jitter: Duration,
    pub jitter_distribution: JitterDistribution,
    /// Percent.
    pub loss: f64,
    /// Percent.
    pub loss_correlation: f64,
    pub bandwidth: Bandwidth,
    #[serde(with = "human")]
    pub queue: Duration,
    pub reorder: bool,
}

impl Default for LinkParams {
    /// A perfect link: no delay, no loss, unlimited bandwidth.
    fn default() -> Self {
        LinkParams {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_distribution: JitterDistribution::Uniform,
            loss: 0.0,
            loss_correlation: 0.0,
            bandwidth: Bandwidth::Unlimited,
            queue: Duration::from_millis(100),
            reorder: false,
        }
    }
}

impl LinkParams {
    /// These parameters with the fields `p` gives replaced.
    pub fn patched(mut self, p: &LinkProfile) -> LinkParams {
        if let Some(v) = p.latency {
            self.latency = v;
        }
        if let Some(v) = p.jitter {
            self.jitter = v;
        }
        if let Some(v) = p.jitter_distribution {
            self.jitter_distribution = v;
        }
        if let Some(v) = p.loss {
            self.loss = v.0;
        }
        if let Some(v) = p.loss_correlation {
            self.loss_correlation = v.0;
        }
        if let Some(v) = p.bandwidth {
            self.bandwidth = v;
        }
        if let Some(v) = p.queue {
            self.queue = v;
        }
        if let Some(v) = p.reorder {
            self.reorder = v;
        }
        self
    }

    /// True when the link does nothing (packets pass at once).
    pub fn is_perfect(&self) -> bool {
        self.latency.is_zero()
            && self.jitter.is_zero()
            && self.loss == 0.0
            && self.bandwidth == Bandwidth::Unlimited
    }
}

/// A problem in the `network` section: where (a field path such as `network.links[2].from`,
/// which the orchestrator maps to file:line) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkIssue {
    pub path: String,
    pub message: String,
}

impl NetworkIssue {
    fn new(path: String, message: String) -> Self {
        NetworkIssue { path, message }
    }
}

impl fmt::Display for NetworkIssue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn unknown_group(path: String, g: &str, groups: &[&str]) -> NetworkIssue {
    NetworkIssue::new(
        path,
        format!(
            "unknown group `{g}`; the plan's groups are: {}",
            groups.join(", ")
        ),
    )
}

impl Network {
    /// The region each group is placed in, if any.
    pub fn region_of(&self, group: &str) -> Option<&str> {
        self.regions
            .iter()
            .find(|(_, r)| r.groups.iter().any(|g| g == group))
            .map(|(name, _)| name.as_str())
    }

    /// The RTT between two regions (either order), if given.
    pub fn region_rtt(&self, a: &str, b: &str) -> Option<Duration> {
        let get = |x: &str, y: &str| self.regions.get(x).and_then(|r| r.rtt.get(y)).copied();
        get(a, b).or_else(|| get(b, a))
    }

    /// The profile of the direction `from → to` between two groups, before any event.
    pub fn link_params(&self, from: &str, to: &str) -> LinkParams {
        let mut p = LinkParams::default().patched(&self.default);
        if let (Some(ra), Some(rb)) = (self.region_of(from), self.region_of(to))
            && let Some(rtt) = self.region_rtt(ra, rb)
        {
            p.latency = rtt / 2;
        }
        for o in &self.links {
            if o.applies_to(from, to) {
                p = p.patched(&o.profile());
            }
        }
        p
    }

    /// `link_params` for every ordered pair of `groups`: `matrix[from][to]`.
    pub fn link_matrix(&self, groups: &[&str]) -> Vec<Vec<LinkParams>> {
        groups
            .iter()
            .map(|f| groups.iter().map(|t| self.link_params(f, t)).collect())
            .collect()
    }

    /// The events ordered by `at` (stable: events at the same time keep plan order).
    pub fn events_in_order(&self) -> Vec<&NetworkEvent> {
        let mut ev: Vec<&NetworkEvent> = self.events.iter().collect();
        ev.sort_by_key(|e| e.at);
        ev
    }

    /// Every problem of the section against the plan's group ids and its timeout. An empty
    /// list means the section is sound.
    pub fn validate(&self, groups: &[&str], timeout: Duration) -> Vec<NetworkIssue> {
        let mut issues = Vec::new();
        self.default.validate("network.default", &mut issues);
        for (i, l) in self.links.iter().enumerate() {
            l.validate(&format!("network.links[{i}]"), groups, &mut issues);
        }
        self.validate_regions(groups, &mut issues);
        self.validate_events(groups, timeout, &mut issues);
        issues
    }

    fn validate_regions(&self, groups: &[&str], issues: &mut Vec<NetworkIssue>) {
        let mut placed: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, region) in &self.regions {
            let path = format!("network.regions.{name}");
            if region.groups.is_empty() {
                issues.push(NetworkIssue::new(
                    format!("{path}.groups"),
                    "a region needs at least one group".into(),
                ));
            }
            for (i, g) in region.groups.iter().enumerate() {
                let gp = format!("{path}.groups[{i}]");
                if !groups.contains(&g.as_str()) {
                    issues.push(unknown_group(gp, g, groups));
                } else if let Some(other) = placed.insert(g, name) {
                    issues.push(NetworkIssue::new(
                        gp,
                        format!("group `{g}` is already placed in region `{other}`; a group lives in one region"),
                    ));
                }
            }
            for (other, rtt) in &region.rtt {
                let rp = format!("{path}.rtt.{other}");
                if !self.regions.contains_key(other) {
                    let known: Vec<&str> = self.regions.keys().map(String::as_str).collect();
                    issues.push(NetworkIssue::new(
                        rp,
                        format!(
                            "unknown region `{other}`; the regions are: {}",
                            known.join(", ")
                        ),
                    ));
                    continue;
                }
                if *rtt > MAX_DELAY * 2 {
                    issues.push(NetworkIssue::new(
                        rp.clone(),
                        format!(
                            "an RTT of {} is absurd; write a smaller duration",
                            humantime::format_duration(*rtt)
                        ),
                    ));
                }
                if other.as_str() < name.as_str()
                    && let Some(back) = self.regions[other].rtt.get(name)
                    && back != rtt
                {
                    issues.push(NetworkIssue::new(
                        rp,
                        format!(
                            "RTT {name}↔{other} is given twice with different values ({} here, {} in region `{other}`); give it once",
                            humantime::format_duration(*rtt),
                            humantime::format_duration(*back)
                        ),
                    ));
                }
            }
        }
        let names: Vec<&String> = self.regions.keys().collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                if self.region_rtt(a, b).is_none() {
                    issues.push(NetworkIssue::new(
                        format!("network.regions.{a}.rtt"),
                        format!("no RTT between regions `{a}` and `{b}`; add `{b}: 80ms` (for example) to `rtt`"),
                    ));
                }
            }
        }
    }

    fn validate_events(&self, groups: &[&str], timeout: Duration, issues: &mut Vec<NetworkIssue>) {
        let mut names: Vec<&str> = Vec::new();
        for e in self.events_in_order() {
            let i = self
                .events
                .iter()
                .position(|x| std::ptr::eq(x, e))
                .unwrap_or_default();
            let path = format!("network.events[{i}]");
            if e.at > timeout {
                issues.push(NetworkIssue::new(
                    format!("{path}.at"),
                    format!(
                        "at {} is after the plan's timeout ({}); the event would never happen",
                        humantime::format_duration(e.at),
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            match e.action() {
                None => issues.push(NetworkIssue::new(
                    path,
                    "an event needs exactly one of `partition`, `heal`, `set_link`".into(),
                )),
                Some(EventAction::Partition(p)) => {
                    let pp = format!("{path}.partition");
                    if let Some(n) = &p.name {
                        if names.contains(&n.as_str()) {
                            issues.push(NetworkIssue::new(
                                format!("{pp}.name"),
                                format!("partition name `{n}` is used twice; names must be unique"),
                            ));
                        }
                        names.push(n);
                    }
                    let listed: usize = p.groups.iter().map(Vec::len).sum();
                    if listed == 0 {
                        issues.push(NetworkIssue::new(
                            format!("{pp}.groups"),
                            "the partition names no group; write e.g. `groups: [[a], [b]]`".into(),
                        ));
                    } else if p.groups.len() < 2 {
                        issues.push(NetworkIssue::new(
                            format!("{pp}.groups"),
                            "a partition needs at least two sets of groups, e.g. `[[a], [b, c]]`"
                                .into(),
                        ));
                    }
                    let mut seen: Vec<&str> = Vec::new();
                    for (si, set) in p.groups.iter().enumerate() {
                        if set.is_empty() && listed > 0 {
                            issues.push(NetworkIssue::new(
                                format!("{pp}.groups[{si}]"),
                                "an empty set cuts nothing; remove it or name groups".into(),
                            ));
                        }
                        for (gi, g) in set.iter().enumerate() {
                            let gp = format!("{pp}.groups[{si}][{gi}]");
                            if !groups.contains(&g.as_str()) {
                                issues.push(unknown_group(gp, g, groups));
                            } else if seen.contains(&g.as_str()) {
                                issues.push(NetworkIssue::new(
                                    gp,
                                    format!("group `{g}` is on two sides of the partition"),
                                ));
                            } else {
                                seen.push(g);
                            }
                        }
                    }
                }
                Some(EventAction::Heal(h)) => {
                    if let Some(n) = &h.partition
                        && !names.contains(&n.as_str())
                    {
                        issues.push(NetworkIssue::new(
                            format!("{path}.heal.partition"),
                            format!("no partition named `{n}` happens before this heal"),
                        ));
                    }
                }
                Some(EventAction::SetLink(l)) => {
                    l.validate(&format!("{path}.set_link"), groups, issues);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Network {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const GROUPS: &[&str] = &["eu", "us", "asia"];

    #[test]
    fn parses_the_documented_example() {
        let n = parse(
            r#"
default: { latency: 10ms, jitter: 1ms, loss: 0.1, bandwidth: 100Mbit }
regions:
  eu:   { groups: [eu], rtt: { us: 80ms, asia: 160ms } }
  us:   { groups: [us], rtt: { asia: 120ms } }
  asia: { groups: [asia] }
links:
  - { from: eu, to: us, symmetric: false, loss: "2%" }
events:
  - { at: 20s, partition: { name: eu-cut, groups: [[eu], [us, asia]] } }
  - { at: 30s, heal: all }
  - { at: 31s, heal: { partition: eu-cut } }
  - { at: 40s, set_link: { from: us, to: asia, latency: 90ms } }
"#,
        );
        assert!(n.validate(GROUPS, Duration::from_secs(60)).is_empty());
        let eu_us = n.link_params("eu", "us");
        assert_eq!(eu_us.latency, Duration::from_millis(40));
        assert_eq!(eu_us.loss, 2.0);
        assert_eq!(eu_us.jitter, Duration::from_millis(1));
        assert_eq!(eu_us.bandwidth, Bandwidth::BitsPerSec(100_000_000));
        let us_eu = n.link_params("us", "eu");
        assert_eq!(us_eu.latency, Duration::from_millis(40));
        assert_eq!(
            us_eu.loss, 0.1,
            "symmetric: false leaves the reverse direction alone"
        );
        assert_eq!(
            n.link_params("asia", "us").latency,
            Duration::from_millis(60)
        );
        assert_eq!(n.link_params("eu", "eu").latency, Duration::from_millis(10));
        assert_eq!(n.events[1].heal, Some(Heal { partition: None }));
        assert_eq!(
            n.events[2].heal,
            Some(Heal {
                partition: Some("eu-cut".into())
            })
        );
        let Some(EventAction::Partition(p)) = n.events[0].action() else {
            panic!()
        };
        assert!(
            p.separates("eu", "asia") && !p.separates("us", "asia") && !p.separates("eu", "xx")
        );
    }

    #[test]
    fn later_links_patch_earlier_ones_field_by_field() {
        let n = parse(
            r#"
default: { latency: 5ms }
links:
  - { from: eu, to: us, latency: 30ms, loss: 1 }
  - { from: us, to: eu, loss: 3 }
"#,
        );
        let p = n.link_params("eu", "us");
        assert_eq!((p.latency, p.loss), (Duration::from_millis(30), 3.0));
        assert_eq!(
            n.link_params("eu", "asia").latency,
            Duration::from_millis(5)
        );
    }

    #[test]
    fn bandwidth_parses_bits_and_refuses_bytes() {
        assert_eq!(
            Bandwidth::parse("10Mbit"),
            Ok(Bandwidth::BitsPerSec(10_000_000))
        );
        assert_eq!(
            Bandwidth::parse("1Gbit"),
            Ok(Bandwidth::BitsPerSec(1_000_000_000))
        );
        assert_eq!(
            Bandwidth::parse("500kbit"),
            Ok(Bandwidth::BitsPerSec(500_000))
        );
        assert_eq!(
            Bandwidth::parse("2.5 Mbit/s"),
            Ok(Bandwidth::BitsPerSec(2_500_000))
        );
        assert_eq!(Bandwidth::parse("unlimited"), Ok(Bandwidth::Unlimited));
        assert!(Bandwidth::parse("10MB").unwrap_err().contains("ambiguous"));
        assert!(
            Bandwidth::parse("10Mbps")
                .unwrap_err()
                .contains("ambiguous")
        );
        assert!(Bandwidth::parse("10").is_err());
        assert!(Bandwidth::parse("fast").is_err());
        for t in [
            "10Mbit",
            "1Gbit",
            "500kbit",
            "1.5Mbit",
            "300bit",
            "unlimited",
        ] {
            assert_eq!(Bandwidth::parse(t).unwrap().to_string(), t);
        }
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_at_parse() {
        assert!(serde_saphyr::from_str::<Network>("default: { latncy: 5ms }").is_err());
        assert!(serde_saphyr::from_str::<Network>("default: { latency: 5 }").is_err());
        assert!(serde_saphyr::from_str::<Network>("default: { loss: lots }").is_err());
        assert!(
            serde_saphyr::from_str::<Network>("default: { jitter_distribution: gauss }").is_err()
        );
        assert!(serde_saphyr::from_str::<Network>("events: [{ at: 1s, heal: some }]").is_err());
        assert!(
            serde_saphyr::from_str::<Network>("events: [{ at: 1s, heal: { name: x } }]").is_err()
        );
        assert!(
            serde_saphyr::from_str::<Network>("links: [{ from: a, to: b, color: red }]").is_err()
        );
    }

    fn paths(n: &Network) -> Vec<String> {
        n.validate(GROUPS, Duration::from_secs(60))
            .into_iter()
            .map(|i| i.path)
            .collect()
    }

    #[test]
    fn validation_points_at_the_field() {
        let n = parse(
            r#"
default: { latency: 2m, loss: 120, loss_correlation: 100, bandwidth: 1bit, queue: 0s }
links:
  - { from: eu, to: mars }
regions:
  eu: { groups: [eu, us], rtt: { us: 80ms, moon: 1s } }
  us: { groups: [us], rtt: { eu: 70ms } }
  asia: { groups: [] }
events:
  - { at: 2m, heal: all }
  - { at: 1s, partition: { groups: [] } }
  - { at: 2s, partition: { groups: [[eu], [eu, venus]] } }
  - { at: 3s, heal: { partition: nope } }
  - { at: 4s }
  - { at: 5s, heal: all, partition: { groups: [[eu], [us]] } }
  - { at: 6s, set_link: { from: eu, to: pluto, loss: -1 } }
"#,
        );
        let p = paths(&n);
        for want in [
            "network.default.latency",
            "network.default.loss",
            "network.default.loss_correlation",
            "network.default.bandwidth",
            "network.default.queue",
            "network.links[0].to",
            "network.regions.us.groups[0]",
            "network.regions.eu.rtt.moon",
            "network.regions.us.rtt.eu",
            "network.regions.asia.groups",
            "network.regions.asia.rtt",
            "network.events[0].at",
            "network.events[1].partition.groups",
            "network.events[2].partition.groups[1][0]",
            "network.events[2].partition.groups[1][1]",
            "network.events[3].heal.partition",
            "network.events[4]",
            "network.events[5]",
            "network.events[6].set_link.to",
            "network.events[6].set_link.loss",
        ] {
            assert!(p.iter().any(|x| x == want), "missing {want} in {p:#?}");
        }
        let msg = n.validate(GROUPS, Duration::from_secs(60));
        let unknown = msg
            .iter()
            .find(|i| i.path == "network.links[0].to")
            .unwrap();
        assert!(
            unknown
                .to_string()
                .contains("unknown group `mars`; the plan's groups are: eu, us, asia")
        );
    }

    #[test]
    fn a_partition_with_one_set_is_refused() {
        let n = parse("events: [{ at: 1s, partition: { groups: [[eu, us]] } }]");
        assert_eq!(paths(&n), ["network.events[0].partition.groups"]);
    }

    #[test]
    fn round_trips_through_serde() {
        let n = parse(
            r#"
default: { latency: 20ms, jitter: 2ms, jitter_distribution: pareto, loss: 1.5, bandwidth: 10Mbit, queue: 50ms, reorder: true }
regions: { eu: { groups: [eu], rtt: { eu: 4ms } } }
events: [{ at: 1s, heal: all }, { at: 2s, heal: { partition: x } }]
"#,
        );
        let json = serde_json::to_string(&n).unwrap();
        let back: Network = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        assert_eq!(n.link_params("eu", "eu").latency, Duration::from_millis(2));
        assert_eq!(
            Network::default().link_params("a", "b"),
            LinkParams::default()
        );
        assert!(LinkParams::default().is_perfect());
    }
}
