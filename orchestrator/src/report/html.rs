//! A [`Doc`] as one self-contained HTML page: inline CSS, charts as inline SVG, no script, no
//! font or file fetched from anywhere — it opens offline and can be mailed as one file.

use super::doc::{Block, Doc, Span};
use std::fmt::Write;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#222;line-height:1.45}\
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}\
h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #eee;padding-bottom:.2em}\
h3{font-size:1.05em;margin-top:1.2em}\
table{border-collapse:collapse;margin:.6em 0;font-size:.88em;display:block;overflow-x:auto}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;white-space:nowrap}\
th{background:#f4f4f4}\
tr:nth-child(even) td{background:#fafafa}\
code{background:#f2f2f2;padding:0 3px;border-radius:3px;font-size:.92em}\
figure{margin:1em 0;border:1px solid #e4e4e4;padding:6px;display:inline-block;max-width:100%}\
figure svg{max-width:100%;height:auto;display:block}\
figcaption{font-size:.85em;color:#555}\
.charts{display:flex;flex-wrap:wrap;gap:8px}";

pub fn render(doc: &Doc) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&doc.title),
        esc(&doc.title)
    );
    let mut in_charts = false;
    for b in &doc.blocks {
        let is_chart = matches!(b, Block::Chart(_));
        if is_chart && !in_charts {
            o.push_str("<div class=\"charts\">\n");
        } else if !is_chart && in_charts {
            o.push_str("</div>\n");
        }
        in_charts = is_chart;
        match b {
            Block::Heading(level, s) => {
                let _ = writeln!(o, "<h{level} id=\"{}\">{}</h{level}>", anchor(s), esc(s));
            }
            Block::Para(spans) => {
                let _ = writeln!(o, "<p>{}</p>", spans_html(spans));
            }
            Block::List(items) => {
                o.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(o, "<li>{}</li>", spans_html(item));
                }
                o.push_str("</ul>\n");
            }
            Block::Table(t) => {
                o.push_str("<table>\n");
                if t.head.iter().any(|h| !h.is_empty()) {
                    o.push_str("<thead><tr>");
                    for h in &t.head {
                        let _ = write!(o, "<th>{}</th>", esc(h));
                    }
                    o.push_str("</tr></thead>\n");
                }
                o.push_str("<tbody>\n");
                for row in &t.rows {
                    o.push_str("<tr>");
                    for c in row {
                        let _ = write!(o, "<td>{}</td>", span_html(c));
                    }
                    o.push_str("</tr>\n");
                }
                o.push_str("</tbody>\n</table>\n");
            }
            Block::Chart(c) => {
                let _ = writeln!(
                    o,
                    "<figure data-chart=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    esc(&c.file),
                    strip_xml_declaration(&c.svg),
                    esc(&c.title)
                );
            }
            Block::Rule => o.push_str("<hr>\n"),
        }
    }
    if in_charts {
        o.push_str("</div>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(svg, |(_, after)| after.trim_start()),
        None => svg.trim(),
    }
}

fn spans_html(spans: &[Span]) -> String {
    spans.iter().map(span_html).collect()
}

fn span_html(s: &Span) -> String {
    match s {
        Span::Text(t) => esc(t),
        Span::Strong(t) => format!("<strong>{}</strong>", esc(t)),
        Span::Code(t) => format!("<code>{}</code>", esc(t)),
        Span::Link(t, href) => format!("<a href=\"{}\">{}</a>", esc(href), esc(t)),
        Span::Seq(spans) => spans_html(spans),
    }
}

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

fn anchor(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            if c.is_ascii_alphanumeric() {
                Some(c.to_ascii_lowercase())
            } else if c == ' ' || c == '-' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::{Chart, Table};

    #[test]
    fn self_contained_page() {
        let mut d = Doc::new("A <b>");
        d.h2("Charts & more");
        d.chart(Chart {
            title: "c".into(),
            file: "charts/c.svg".into(),
            svg: "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".into(),
        });
        d.table(Table {
            head: vec!["h".into()],
            rows: vec![vec![Span::Strong("1 < 2".into())]],
        });
        let h = render(&d);
        assert!(h.contains("<title>A &lt;b&gt;</title>"));
        assert!(
            h.contains("<div class=\"charts\">\n<figure data-chart=\"charts/c.svg\">\n<svg xmlns")
        );
        assert!(!h.contains("<?xml"));
        assert!(h.contains("<td><strong>1 &lt; 2</strong></td>"));
        assert!(!h.contains("http://") || !h.replace("http://www.w3.org/", "").contains("http://"));
        assert!(!h.contains("<script") && !h.contains("<link"));
    }
}
