//! A plan's `matrix:` → cells (one combination of swept values each) → the schedule of runs.
//! Cells are the cartesian product of the swept parameters in name order, the last name
//! varying fastest. The schedule runs warm-up runs first, then iteration 1 of every cell,
//! iteration 2 of every cell, and so on: slow drift of the machine (heat, caches, other
//! load) spreads over all cells instead of biasing the ones that happen to run last, and the
//! variants of one cell run next to each other.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use testbed_contract::plan::Matrix;

/// One combination of swept values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub index: usize,
    /// Swept parameter → value, only the swept ones.
    pub params: BTreeMap<String, Value>,
}

impl Cell {
    /// `hosts=5 messages=20 variant=gossipsub`.
    pub fn key(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A name usable in paths: `hosts5-messages20-gossipsub`.
    pub fn slug(&self) -> String {
        let parts: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => s.clone(),
                other => format!("{k}{other}"),
            })
            .collect();
        parts
            .join("-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }
}

/// A parameter value as a person writes it: strings without quotes.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How the swept parameters are shown: the x axis, the compared variants, and the rest
/// (which, with the variant, make one chart series each).
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    pub x: String,
    pub compare: Option<String>,
    /// Swept parameters other than `x` and `compare`, in name order.
    pub others: Vec<String>,
}

impl Axes {
    pub fn of(m: &Matrix) -> Axes {
        let compare = m.compare.clone();
        let x =
            m.x.clone()
                .or_else(|| m.params.contains_key("hosts").then(|| "hosts".to_string()))
                .filter(|x| Some(x) != compare.as_ref())
                .or_else(|| {
                    m.params
                        .keys()
                        .find(|k| Some(*k) != compare.as_ref())
                        .cloned()
                })
                .or_else(|| m.params.keys().next().cloned())
                .unwrap_or_default();
        let others = m
            .params
            .keys()
            .filter(|k| **k != x && Some(*k) != compare.as_ref())
            .cloned()
            .collect();
        Axes { x, compare, others }
    }

    /// The series a cell belongs to: every swept value except the x axis, as a label
    /// (`messages=20, gossipsub`), the variant last.
    pub fn series_label(&self, cell: &Cell) -> String {
        let mut parts: Vec<String> = self
            .others
            .iter()
            .filter_map(|k| cell.get(k).map(|v| format!("{k}={}", value_text(v))))
            .collect();
        if let Some(c) = &self.compare
            && let Some(v) = cell.get(c)
        {
            parts.push(value_text(v));
        }
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join(", ")
        }
    }

    /// The cell's coordinates without the compared parameter (`hosts=5 messages=20`): the
    /// cells sharing it are the variants compared side by side.
    pub fn slice_key(&self, cell: &Cell) -> String {
        cell.params
            .iter()
            .filter(|(k, _)| Some(*k) != self.compare.as_ref())
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Every combination of the swept values.
pub fn expand(m: &Matrix) -> Vec<Cell> {
    let mut combos: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
    for (name, values) in &m.params {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(name.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    if m.params.is_empty() {
        return Vec::new();
    }
    combos
        .into_iter()
        .enumerate()
        .map(|(index, params)| Cell { index, params })
        .collect()
}

/// One run of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub warmup: bool,
    pub cell: usize,
    /// Iteration within the cell (for warm-ups: the warm-up's number).
    pub iteration: u32,
}

impl Slot {
    /// The run id, which names its folder: `hosts5-messages20-gossipsub-i03`, `warmup-02-…`.
    pub fn run_id(&self, cells: &[Cell]) -> String {
        let slug = cells[self.cell].slug();
        if self.warmup {
            format!("warmup-{:02}-{slug}", self.iteration + 1)
        } else {
            format!("{slug}-i{:02}", self.iteration + 1)
        }
    }
}

/// Warm-ups (cycling through the cells), then the iterations, iteration-major.
pub fn schedule(cells: usize, iterations: u32, warmup: u32) -> Vec<Slot> {
    if cells == 0 {
        return Vec::new();
    }
    let mut s: Vec<Slot> = (0..warmup)
        .map(|w| Slot {
            warmup: true,
            cell: w as usize % cells,
            iteration: w,
        })
        .collect();
    for it in 0..iterations {
        s.extend((0..cells).map(|cell| Slot {
            warmup: false,
            cell,
            iteration: it,
        }));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matrix() -> Matrix {
        Matrix {
            params: [
                ("hosts".to_string(), vec![json!(2), json!(3)]),
                (
                    "variant".to_string(),
                    vec![json!("gossipsub"), json!("floodsub")],
                ),
                ("messages".to_string(), vec![json!(5)]),
            ]
            .into_iter()
            .collect(),
            iterations: 3,
            warmup: 1,
            compare: Some("variant".into()),
            x: None,
        }
    }

    #[test]
    fn cells_are_the_product_last_name_fastest() {
        let cells = expand(&matrix());
        let keys: Vec<String> = cells.iter().map(Cell::key).collect();
        assert_eq!(
            keys,
            [
                "hosts=2 messages=5 variant=gossipsub",
                "hosts=2 messages=5 variant=floodsub",
                "hosts=3 messages=5 variant=gossipsub",
                "hosts=3 messages=5 variant=floodsub",
            ]
        );
        assert_eq!(cells[1].slug(), "hosts2-messages5-floodsub");
    }

    #[test]
    fn axes_and_labels() {
        let m = matrix();
        let a = Axes::of(&m);
        assert_eq!(a.x, "hosts");
        assert_eq!(a.others, ["messages"]);
        let cells = expand(&m);
        assert_eq!(a.series_label(&cells[1]), "messages=5, floodsub");
        assert_eq!(a.slice_key(&cells[1]), "hosts=2 messages=5");
        let mut no_hosts = m.clone();
        no_hosts.params.remove("hosts");
        assert_eq!(Axes::of(&no_hosts).x, "messages");
    }

    #[test]
    fn schedule_is_iteration_major_after_warmups() {
        let s = schedule(2, 2, 3);
        let short: Vec<(bool, usize, u32)> =
            s.iter().map(|s| (s.warmup, s.cell, s.iteration)).collect();
        assert_eq!(
            short,
            [
                (true, 0, 0),
                (true, 1, 1),
                (true, 0, 2),
                (false, 0, 0),
                (false, 1, 0),
                (false, 0, 1),
                (false, 1, 1)
            ]
        );
        let cells = expand(&matrix());
        assert_eq!(s[0].run_id(&cells), "warmup-01-hosts2-messages5-gossipsub");
        assert_eq!(s[6].run_id(&cells), "hosts2-messages5-floodsub-i02");
    }
}
