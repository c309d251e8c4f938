//! Finds the line and column of a field path (`groups[1].count`) in a plan's YAML text, so
//! that errors found after parsing (a group that does not exist, a node index past the fleet)
//! still point at the exact place in the file.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path, displayed as `workload[2].publish.count`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn key(mut self, k: &str) -> Self {
        self.0.push(Seg::Key(k.to_string()));
        self
    }
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }
}

impl FieldPath {
    /// Reads the displayed form back: `network.links[2].from`.
    pub fn parse(text: &str) -> FieldPath {
        let mut path = FieldPath::default();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                path = path.key(key);
            }
            for idx in rest.split('[').filter(|r| !r.is_empty()) {
                match idx.trim_end_matches(']').parse() {
                    Ok(i) => path = path.index(i),
                    Err(_) => path = path.key(idx.trim_end_matches(']')),
                }
            }
        }
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The YAML document as a tree of nodes with their positions.
#[derive(Debug)]
pub enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

pub struct SourceTree {
    root: Option<Spanned<Node>>,
}

impl SourceTree {
    pub fn parse(text: &str) -> SourceTree {
        SourceTree {
            root: serde_saphyr::from_str::<Spanned<Node>>(text).ok(),
        }
    }

    /// Line and column (1-based) of the deepest existing node along `path`.
    pub fn locate(&self, path: &FieldPath) -> Option<(u32, u32)> {
        let mut node = self.root.as_ref()?;
        let mut best = pos(node);
        for seg in &path.0 {
            let next = match (&node.value, seg) {
                (Node::Map(entries), Seg::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| &key.value == k)
                    .map(|(key, value)| (pos_of(&key.referenced), value)),
                (Node::Seq(items), Seg::Index(i)) => items.get(*i).map(|v| (pos(v), v)),
                _ => None,
            };
            match next {
                Some((key_pos, child)) => {
                    // Point at the value for scalars, at the key for containers.
                    best = if matches!(child.value, Node::Scalar) {
                        pos(child)
                    } else {
                        key_pos
                    };
                    node = child;
                }
                None => break,
            }
        }
        best
    }

    /// The field path of the node that starts at or last before `line:column`, for errors
    /// whose parser knows the place but not the field.
    pub fn path_at(&self, line: u32, column: u32) -> FieldPath {
        fn walk(node: &Spanned<Node>, at: (u32, u32), path: &mut FieldPath) {
            let children: Vec<(Seg, &Spanned<Node>, (u32, u32))> = match &node.value {
                Node::Map(entries) => entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Seg::Key(k.value.clone()),
                            v,
                            pos_of(&k.referenced).unwrap_or((0, 0)),
                        )
                    })
                    .collect(),
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Seg::Index(i), v, pos(v).unwrap_or((0, 0))))
                    .collect(),
                Node::Scalar => return,
            };
            if let Some((seg, child, _)) = children.into_iter().rfind(|(_, _, p)| *p <= at) {
                path.0.push(seg);
                walk(child, at, path);
            }
        }
        let mut path = FieldPath::default();
        if let Some(root) = &self.root {
            walk(root, (line, column), &mut path);
        }
        path
    }
}

fn pos(node: &Spanned<Node>) -> Option<(u32, u32)> {
    pos_of(&node.referenced)
}

fn pos_of(loc: &serde_saphyr::Location) -> Option<(u32, u32)> {
    (loc.line() > 0).then(|| (loc.line() as u32, loc.column() as u32))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    entries.push((
                        Spanned {
                            value: key.value.0,
                            referenced: key.referenced,
                            defined: key.defined,
                        },
                        value,
                    ));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key of any scalar type, kept as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: x\ngroups:\n  - id: a\n    count: 3\n  - id: b\n    count: 5\nworkload:\n  - publish:\n      count: 2\n";

    #[test]
    fn locates_nested_fields() {
        let t = SourceTree::parse(DOC);
        let p = FieldPath::default().key("groups").index(1).key("count");
        assert_eq!(t.locate(&p), Some((6, 12)));
        let p = FieldPath::default()
            .key("workload")
            .index(0)
            .key("publish")
            .key("count");
        assert_eq!(t.locate(&p).map(|l| l.0), Some(9));
        assert_eq!(p.to_string(), "workload[0].publish.count");
        assert_eq!(FieldPath::parse("workload[0].publish.count"), p);
    }

    #[test]
    fn finds_path_from_position() {
        let t = SourceTree::parse(DOC);
        assert_eq!(t.path_at(6, 12).to_string(), "groups[1].count");
    }
}
