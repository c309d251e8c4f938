//! Which nodes a workload phase applies to, by global node index (0-based, groups laid out in
//! plan order). Written as `all`, `3`, `1..` (from 1 on), `..5`, `2..5` (5 excluded),
//! `2..=5`, or a comma list of those: `0, 4..6, 10..`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelector {
    /// Half-open ranges; an empty list means every node.
    ranges: Vec<(u32, Option<u32>)>,
    text: String,
}

impl NodeSelector {
    pub fn all() -> Self {
        NodeSelector {
            ranges: Vec::new(),
            text: "all".into(),
        }
    }

    pub fn contains(&self, index: u32) -> bool {
        self.ranges.is_empty()
            || self
                .ranges
                .iter()
                .any(|&(lo, hi)| index >= lo && hi.is_none_or(|hi| index < hi))
    }

    /// The highest index the selector names explicitly, for validation against fleet size.
    pub fn max_named(&self) -> Option<u32> {
        self.ranges
            .iter()
            .map(|&(lo, hi)| hi.map_or(lo, |h| h.saturating_sub(1)))
            .max()
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "all" {
            return Ok(Self::all());
        }
        let mut ranges = Vec::new();
        for part in trimmed.split(',') {
            ranges.push(parse_range(part.trim()).ok_or_else(|| {
                format!(
                    "invalid node selector `{part}` in `{text}`; write `all`, an index like `3`, or a range like `1..`, `..5`, `2..5`, `2..=5`, comma-separated"
                )
            })?);
        }
        Ok(NodeSelector {
            ranges,
            text: trimmed.to_string(),
        })
    }
}

fn parse_range(part: &str) -> Option<(u32, Option<u32>)> {
    let num = |s: &str| s.trim().parse::<u32>().ok();
    if let Some((lo, hi)) = part.split_once("..") {
        let lo = if lo.trim().is_empty() { 0 } else { num(lo)? };
        let hi = if let Some(inclusive) = hi.strip_prefix('=') {
            Some(num(inclusive)?.checked_add(1)?)
        } else if hi.trim().is_empty() {
            None
        } else {
            Some(num(hi)?)
        };
        if hi.is_some_and(|h| h <= lo) {
            return None;
        }
        Some((lo, hi))
    } else {
        let i = num(part)?;
        // `4294967295` would wrap to an empty range that names nobody.
        Some((i, Some(i.checked_add(1)?)))
    }
}

impl fmt::Display for NodeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for NodeSelector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for NodeSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Index(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Index(i) => Ok(NodeSelector {
                // `u32::MAX` names a node no plan can have; open-ended keeps it out of range
                // for validation instead of wrapping to an empty range.
                ranges: vec![(i, i.checked_add(1))],
                text: i.to_string(),
            }),
            Raw::Text(t) => NodeSelector::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_index_does_not_wrap_into_an_empty_selector() {
        assert!(super::NodeSelector::parse("4294967295").is_err());
        assert!(super::NodeSelector::parse("4294967295..=4294967295").is_err());
        let d: super::NodeSelector =
            serde_json::from_value(serde_json::json!(4294967295u32)).unwrap();
        assert_eq!(d.max_named(), Some(u32::MAX));
    }

    use super::*;

    #[test]
    fn forms() {
        let s = NodeSelector::parse("0, 4..6, 10..").unwrap();
        assert!(s.contains(0) && s.contains(4) && s.contains(5) && s.contains(99));
        assert!(!s.contains(1) && !s.contains(6) && !s.contains(9));
        let s = NodeSelector::parse("2..=3").unwrap();
        assert!(s.contains(3) && !s.contains(4));
        assert_eq!(s.max_named(), Some(3));
        assert!(NodeSelector::parse("all").unwrap().contains(1000));
        assert!(NodeSelector::parse("5..2").is_err());
        assert!(NodeSelector::parse("x").is_err());
    }
}
