//! A [`Doc`] as GitHub-flavoured Markdown (`report.md`, `bench.md`): charts become images
//! linking their SVG files.

use super::doc::{Block, Doc, Span, Table};
use std::fmt::Write;

pub fn render(doc: &Doc) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}", escape(&doc.title));
    for b in &doc.blocks {
        o.push('\n');
        match b {
            Block::Heading(level, s) => {
                let _ = writeln!(o, "{} {}", "#".repeat(*level as usize), escape(s));
            }
            Block::Para(spans) => {
                let _ = writeln!(o, "{}", spans_md(spans));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(o, "- {}", spans_md(item));
                }
            }
            Block::Table(t) => {
                let head: Vec<String> = t.head.iter().map(|h| cell(&escape(h))).collect();
                let _ = writeln!(o, "| {} |", head.join(" | "));
                table_body(&mut o, t);
            }
            Block::Chart(c) => {
                let _ = writeln!(o, "![{}]({})", escape(&c.title), c.file);
            }
            Block::Rule => {
                let _ = writeln!(o, "---");
            }
        }
    }
    o
}

fn table_body(o: &mut String, t: &Table) {
    let _ = writeln!(o, "|{}", "---|".repeat(t.head.len()));
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|s| cell(&span_md(s))).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
}

fn spans_md(spans: &[Span]) -> String {
    spans.iter().map(span_md).collect()
}

fn span_md(s: &Span) -> String {
    match s {
        Span::Text(t) => escape(t),
        Span::Strong(t) if t.is_empty() => String::new(),
        Span::Strong(t) => format!("**{}**", escape(t)),
        Span::Code(t) => format!("`{}`", t.replace('`', "'")),
        Span::Link(t, href) => format!("[{}]({})", escape(t), href.replace(' ', "%20")),
        Span::Seq(spans) => spans_md(spans),
    }
}

/// Characters Markdown would read as markup.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '_' | '[' | ']' | '<' | '>' | '#' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// A table cell: `|` and line breaks would end it.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::Chart;

    #[test]
    fn renders_blocks() {
        let mut d = Doc::new("Bench: x");
        d.h2("Charts");
        d.para(vec![
            Span::text("a_b "),
            Span::Strong("c".into()),
            Span::Code("d".into()),
        ]);
        d.list(vec![vec![Span::Link(
            "run 1".into(),
            "runs/a b/report.md".into(),
        )]]);
        d.table(Table {
            head: vec!["k".into(), "v".into()],
            rows: vec![vec![Span::text("x|y"), Span::text("1")]],
        });
        d.chart(Chart {
            title: "Latency".into(),
            file: "charts/latency.svg".into(),
            svg: String::new(),
        });
        assert_eq!(
            render(&d),
            "# Bench: x\n\n## Charts\n\na\\_b **c**`d`\n\n- [run 1](runs/a%20b/report.md)\n\n| k | v |\n|---|---|\n| x\\|y | 1 |\n\n![Latency](charts/latency.svg)\n"
        );
    }
}
