//! A report as a document — headings, paragraphs, lists, tables and charts — built once and
//! rendered to Markdown ([`super::doc_md`]) or to one self-contained HTML page
//! ([`super::html`]), so both formats always say the same thing. Both a run's reports
//! ([`super::run`]) and a bench's ([`crate::bench::view`]) are built as one.

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub enum Block {
    /// Level 2 or 3 (the title is level 1).
    Heading(u8, String),
    Para(Vec<Span>),
    List(Vec<Vec<Span>>),
    Table(Table),
    Chart(Chart),
    /// A horizontal rule (before a closing note).
    Rule,
}

/// A piece of inline text.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    Text(String),
    Strong(String),
    Code(String),
    /// Text and a relative link target.
    Link(String, String),
    /// Several spans in a row where one is expected (a table cell with a bold part).
    Seq(Vec<Span>),
}

impl Span {
    pub fn text(s: impl Into<String>) -> Span {
        Span::Text(s.into())
    }

    /// The text without markup.
    pub fn plain(&self) -> String {
        match self {
            Span::Text(s) | Span::Strong(s) | Span::Code(s) | Span::Link(s, _) => s.clone(),
            Span::Seq(spans) => spans.iter().map(Span::plain).collect(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub head: Vec<String>,
    /// One span per cell.
    pub rows: Vec<Vec<Span>>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// Where the SVG file is, relative to the report (Markdown links to it).
    pub file: String,
    /// The SVG document (HTML embeds it).
    pub svg: String,
}

impl Doc {
    pub fn new(title: impl Into<String>) -> Doc {
        Doc {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    pub fn h2(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(2, s.into()));
    }

    pub fn h3(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(3, s.into()));
    }

    pub fn para(&mut self, spans: Vec<Span>) {
        self.blocks.push(Block::Para(spans));
    }

    pub fn text(&mut self, s: impl Into<String>) {
        self.para(vec![Span::text(s)]);
    }

    pub fn list(&mut self, items: Vec<Vec<Span>>) {
        self.blocks.push(Block::List(items));
    }

    pub fn table(&mut self, t: Table) {
        self.blocks.push(Block::Table(t));
    }

    pub fn chart(&mut self, c: Chart) {
        self.blocks.push(Block::Chart(c));
    }

    pub fn rule(&mut self) {
        self.blocks.push(Block::Rule);
    }

    /// The section headings in order, as (level, text); the title is level 1.
    pub fn headings(&self) -> Vec<(u8, String)> {
        let mut h = vec![(1, self.title.clone())];
        h.extend(self.blocks.iter().filter_map(|b| match b {
            Block::Heading(level, s) => Some((*level, s.clone())),
            _ => None,
        }));
        h
    }

    pub fn charts(&self) -> impl Iterator<Item = &Chart> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Chart(c) => Some(c),
            _ => None,
        })
    }
}
