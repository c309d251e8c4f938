//! The orchestrator's architecture, checked from its source: the modules form layers and
//! every `crate::`/`super::` import runs down them, never up; no two modules import each
//! other, directly or around a loop; and no function grows past a screen and a half.
//!
//! The layer table below is the map CONTRIBUTING.md describes. A module's layer is that of
//! the longest entry its path starts with; a module no entry covers fails the test, so a new
//! module gets its place (and the reason for it) here. A module that only gathers its parts
//! (`pub mod` and `pub use`) is a facade: its parts import each other, never the facade.
//! Test code (`#[cfg(test)]` modules) is not part of the graph: a unit test of validation may
//! load a whole plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Entry points: the command line.
const ENTRY: u8 = 90;
/// Commands beside `run`: each drives runs or nodes its own way.
const COMMAND: u8 = 80;
/// One run, end to end.
const PIPELINE: u8 = 70;
/// The workload on a live fleet, and the churn phase within it.
const DRIVE: u8 = 60;
/// The live fleet: slots fed by control messages and process exits.
const FLEET: u8 = 50;
/// What a run decided before it started.
const SPEC: u8 = 45;
/// Services a run uses: processes, the control channel, telemetry, progress output.
const SERVICES: u8 = 40;
/// Rendering records into reports.
const REPORT: u8 = 35;
/// Pure functions from records to figures.
const FIGURES: u8 = 30;
/// Leaf utilities over records: charts, host facts.
const UTIL: u8 = 25;
/// The run record and its files.
const RECORD: u8 = 20;
/// The plan and what follows from it alone (pure): validation, topology, churn schedule.
const PLAN: u8 = 15;
/// Process-wide basics: exit codes, signals.
const BASE: u8 = 10;

/// The layers, one line per module (or module tree), with why it sits where it does.
const LAYERS: &[(&str, u8)] = &[
    ("cli", ENTRY),             // parses flags and calls every command below
    ("bench", COMMAND),         // runs a matrix of whole runs through `run`
    ("capacity", COMMAND),      // bisects a plan parameter with whole runs through `run`
    ("k8s", COMMAND),           // renders, runs and coordinates runs on a cluster
    ("conformance", COMMAND),   // drives single nodes through the contract
    ("run", PIPELINE),          // spec → launch → drive → collect → figures → record → report
    ("workload", DRIVE),        // phases as barriers over the fleet; hands churn to `churn`
    ("churn", DRIVE),           // the churn executor and launcher act on the live fleet
    ("clock_sync", DRIVE),      // pings the fleet for clock offsets, tells nodes their correction
    ("churn::schedule", PLAN),  // the churn events: a pure function of plan and seed
    ("churn::discovery", PLAN), // the mock discovery service the schedule models
    ("fleet", FLEET),           // node slots and the one event loop every wait goes through
    ("spec", SPEC),             // resolved from the plan; read by launch, drive and churn
    ("runner", SERVICES),       // how node processes come and go (local, netns, external)
    ("control", SERVICES),      // the control channel's listener and barriers
    ("telemetry", SERVICES),    // traces, live metrics; fills the record's telemetry sections
    ("progress", SERVICES),     // what a person sees while a run or bench goes
    ("host_load", SERVICES),    // samples the host's CPU on a thread of its own during a run
    ("sampler", SERVICES),      // memory and CPU of node processes, read from /proc
    ("report", REPORT),         // one document from a record, as Markdown and HTML
    ("figures", FIGURES),       // numbers from node records and the drive log, nothing else
    ("chart", UTIL),            // SVG charts for the reports
    ("host", UTIL),             // facts about the machine, into the record
    ("record", RECORD),         // run.json's types, the logs the figures read, the folder
    ("plan", PLAN),             // plan text → validated plan, overrides included
    ("topology", PLAN),         // who dials whom: a pure function of plan and seed
    ("exit", BASE),             // exit codes
    ("signals", BASE),          // the one SIGINT/SIGTERM handler
];

/// The longest function allowed, in lines (declarative tables are constants, not functions).
const MAX_FN_LINES: usize = 150;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source text with comments and the contents of string and char literals blanked (lines
/// kept), so that only code is scanned.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep_lines = |s: &[u8], out: &mut String| {
        for &c in s {
            if c == b'\n' {
                out.push('\n');
            }
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, 0usize);
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            keep_lines(&rest[..j], &mut out);
            i += j;
        } else if let Some(len) = raw_string_len(rest, i == 0 || !is_ident(b[i - 1])) {
            out.push_str("\"\"");
            keep_lines(&rest[..len], &mut out);
            i += len;
        } else if rest[0] == b'"' || rest.starts_with(b"b\"") {
            let mut j = if rest[0] == b'"' { 1 } else { 2 };
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            keep_lines(&rest[..j.min(rest.len())], &mut out);
            i += j + 1;
        } else if rest[0] == b'\'' && char_literal_len(rest).is_some() {
            out.push_str("' '");
            i += char_literal_len(rest).unwrap();
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `code` without its `#[cfg(test)] mod … { … }` blocks (lines kept).
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at..];
        let block = after.find('{').filter(|&b| {
            let head = &after["#[cfg(test)]".len()..b];
            head.split_whitespace().any(|w| w == "mod") && !head.contains(';')
        });
        let Some(open) = block else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str(&rest[..at]);
        out.extend(after[..end].chars().filter(|c| *c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `r"…"`, `r#"…"#`, `br"…"` at the start of `s`: its length.
fn raw_string_len(s: &[u8], at_token_start: bool) -> Option<usize> {
    if !at_token_start {
        return None;
    }
    let start = if s.starts_with(b"br") {
        2
    } else if s.starts_with(b"r") {
        1
    } else {
        return None;
    };
    let hashes = s[start..].iter().take_while(|&&c| c == b'#').count();
    if s.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = start + hashes + 1;
    let end = s[body..].windows(close.len()).position(|w| w == close)?;
    Some(body + end + close.len())
}

/// `'a'`, `'\n'`, `'\u{1F600}'` (not a lifetime): its length.
fn char_literal_len(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        let end = s[2..].iter().position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let text = std::str::from_utf8(&s[1..s.len().min(6)])
        .ok()
        .or_else(|| {
            (2..6)
                .rev()
                .find_map(|n| std::str::from_utf8(&s[1..s.len().min(n)]).ok())
        })?;
    let ch = text.chars().next()?;
    let after = 1 + ch.len_utf8();
    (s.get(after) == Some(&b'\'')).then_some(after + 1)
}

/// Every source file of the crate with its module path (`run::collect`; the crate root is
/// `crate`), following `#[path]` where a module names its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let root = src_dir();
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                let name = match parts.as_slice() {
                    [one] if one == "lib" => "crate".to_string(),
                    [one] if one == "main" => continue,
                    _ => parts.join("::"),
                };
                out.insert(name, p);
            }
        }
    }
    // `#[path = "x.rs"] mod y;`: the file is the module `parent::y`.
    let mut renamed = Vec::new();
    for (module, file) in &out {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            let Some(f) = l
                .trim()
                .strip_prefix("#[path = \"")
                .and_then(|r| r.strip_suffix("\"]"))
            else {
                continue;
            };
            let name = lines.find_map(|l| {
                let rest = l.trim().split("mod ").nth(1)?;
                Some(rest.trim_end_matches(';').trim().to_string())
            });
            if let Some(name) = name {
                renamed.push((file.parent().unwrap().join(f), format!("{module}::{name}")));
            }
        }
    }
    for (file, module) in renamed {
        out.retain(|_, p| *p != file);
        out.insert(module, file);
    }
    out
}

/// File modules that are test code: declared `#[cfg(test)] mod x;`.
fn test_modules(mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (module, file) in mods {
        let text = std::fs::read_to_string(file).unwrap();
        let mut test_next = false;
        for l in text.lines().map(str::trim) {
            if l == "#[cfg(test)]" {
                test_next = true;
            } else if l.starts_with("#[") {
                continue;
            } else {
                if test_next
                    && let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';'))
                {
                    let parent = if module == "crate" {
                        String::new()
                    } else {
                        format!("{module}::")
                    };
                    out.insert(format!("{parent}{name}"));
                }
                test_next = false;
            }
        }
    }
    out
}

/// The module a path names: the longest prefix of `segments` that is a module.
fn resolve(segments: &[String], known: &BTreeSet<String>) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains(m))
}

/// The paths a file uses, as absolute segment lists (`["run", "collect", "Collected"]`),
/// with the inline module (`mod tests { … }`) each occurs in.
fn paths_in(code: &str, module: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let here: Vec<String> = if module == "crate" {
        vec![]
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut out = Vec::new();
    // Inline modules: (name, brace depth at which they close).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
            }
            _ => {}
        }
        let after_colons = i >= 1 && tokens[i - 1] == "::";
        let starts_path = matches!(t, "crate" | "super" | "self") || children.contains(t);
        if starts_path && !after_colons && tokens.get(i + 1).is_some_and(|t| t == "::") {
            let mut base: Vec<String> = here.clone();
            base.extend(inline.iter().map(|(n, _)| n.clone()));
            let (tree, next) = use_tree(&tokens, i);
            for p in tree {
                if let Some(abs) = absolute(&p, &base, &here) {
                    out.push(abs);
                }
            }
            i = next;
            continue;
        }
        i += 1;
    }
    out
}

/// Splits code into identifiers, `::` and single punctuation characters.
fn tokenize(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(code[start..i].to_string());
        } else if code[i..].starts_with("::") {
            out.push("::".into());
            i += 2;
        } else if c.is_ascii_whitespace() || !c.is_ascii() {
            i += code[i..].chars().next().map_or(1, char::len_utf8);
        } else {
            out.push((c as char).to_string());
            i += 1;
        }
    }
    out
}

/// The paths of a use tree or a plain path starting at token `i`
/// (`crate::a::{b, c::d}` → `crate::a::b`, `crate::a::c::d`); and the token after it.
fn use_tree(tokens: &[String], i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = vec![tokens[i].clone()];
    let mut j = i + 1;
    while j + 1 < tokens.len() && tokens[j] == "::" {
        let next = &tokens[j + 1];
        if next == "{" {
            let (inner, after) = group(tokens, j + 2);
            let paths = inner
                .into_iter()
                .map(|mut p| {
                    let mut full = prefix.clone();
                    full.append(&mut p);
                    full
                })
                .collect();
            return (paths, after);
        }
        if next == "*" {
            return (vec![prefix], j + 2);
        }
        prefix.push(next.clone());
        j += 2;
    }
    (vec![prefix], j)
}

/// The paths of a `{ … }` group starting after its `{`; and the token after its `}`.
fn group(tokens: &[String], mut j: usize) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    while j < tokens.len() {
        match tokens[j].as_str() {
            "}" => return (out, j + 1),
            "," => j += 1,
            "{" => {
                let (inner, after) = group(tokens, j + 1);
                out.extend(inner);
                j = after;
            }
            _ => {
                let (paths, after) = use_tree(tokens, j);
                out.extend(paths);
                j = after;
                // `as name`
                if tokens.get(j).is_some_and(|t| t == "as") {
                    j += 2;
                }
            }
        }
    }
    (out, j)
}

/// A path made absolute (without `crate`): `super` and `self` relative to `base` (the
/// module the path is written in, inline modules included), child modules relative to the
/// file's own module `here`.
fn absolute(path: &[String], base: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut segs = path.to_vec();
    let mut abs: Vec<String> = match segs.first()?.as_str() {
        "crate" => {
            segs.remove(0);
            vec![]
        }
        "super" | "self" => {
            let mut b = base.to_vec();
            while segs.first().is_some_and(|s| s == "super" || s == "self") {
                if segs.remove(0) == "super" {
                    b.pop()?;
                }
            }
            b
        }
        _ => here.to_vec(),
    };
    abs.extend(segs.into_iter().filter(|s| s != "self"));
    Some(abs)
}

/// `mod x;` declarations of a file: its child modules.
fn children(code: &str) -> BTreeSet<String> {
    let tokens = tokenize(code);
    tokens
        .windows(3)
        .filter(|w| w[0] == "mod" && w[2] == ";")
        .map(|w| w[1].clone())
        .collect()
}

/// The import graph: module → modules it imports (itself and its own inline modules
/// excluded).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let tests = test_modules(&mods);
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut g = BTreeMap::new();
    for (m, file) in mods.iter().filter(|(m, _)| !tests.contains(*m)) {
        let code = without_test_modules(&code_only(&std::fs::read_to_string(file).unwrap()));
        let kids = children(&code);
        let mut deps = BTreeSet::new();
        for p in paths_in(&code, m, &kids) {
            if let Some(target) = resolve(&p, &known)
                && &target != m
                && target != "crate"
                && !tests.contains(&target)
            {
                deps.insert(target);
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

fn layer_of(module: &str) -> Option<(u8, &'static str)> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(p, l)| (*l, *p))
}

/// Imports that run up the layers: (from, to, from's layer, to's layer).
fn upward(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, deps) in g {
        if from == "crate" {
            continue;
        }
        let Some((lf, pf)) = layer_of(from) else {
            out.push(format!("{from} is in no layer: add it to LAYERS"));
            continue;
        };
        for to in deps {
            let Some((lt, pt)) = layer_of(to) else {
                continue;
            };
            if lt > lf {
                out.push(format!(
                    "{from} (layer `{pf}`, {lf}) imports {to} (layer `{pt}`, {lt}), which is above it"
                ));
            }
        }
    }
    out
}

/// Import cycles, each as the modules on it (Tarjan's strongly connected components).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Functions longer than [`MAX_FN_LINES`]: `file:line name (lines)`.
fn long_functions(file: &Path, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text: Vec<char> = code.chars().collect();
    let mut line = 1;
    let mut i = 0;
    while i < text.len() {
        if text[i] == '\n' {
            line += 1;
        }
        let word_start = i == 0 || !(text[i - 1].is_alphanumeric() || text[i - 1] == '_');
        if word_start && text[i..].starts_with(&['f', 'n', ' ']) {
            let name: String = text[i + 3..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            // The body: the first `{` outside parentheses and angle brackets, unless a `;`
            // (a declaration) comes first.
            let (mut j, mut nest) = (i + 3, 0i32);
            let mut body = None;
            while j < text.len() {
                match text[j] {
                    '(' | '[' | '<' => nest += 1,
                    ')' | ']' | '>' if text[j - 1] != '-' => nest -= 1,
                    ';' if nest <= 0 => break,
                    '{' if nest <= 0 => {
                        body = Some(j);
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            if let Some(start) = body {
                let (mut d, mut k) = (0, start);
                while k < text.len() {
                    match text[k] {
                        '{' => d += 1,
                        '}' => {
                            d -= 1;
                            if d == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                let lines = text[i..k].iter().filter(|c| **c == '\n').count() + 1;
                if lines > MAX_FN_LINES {
                    out.push(format!(
                        "{}:{line} fn {name} ({lines} lines)",
                        file.display()
                    ));
                }
            }
        }
        i += 1;
    }
    out
}

#[test]
fn imports_run_down_the_layers_and_form_no_cycle() {
    let g = graph();
    assert!(g.len() > 50, "found only {} modules", g.len());
    let up = upward(&g);
    assert!(
        up.is_empty(),
        "imports that run up the layers:\n  {}",
        up.join("\n  ")
    );
    let cyc = cycles(&g);
    assert!(
        cyc.is_empty(),
        "import cycles:\n  {}",
        cyc.iter()
            .map(|c| c.join(" ↔ "))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn no_function_is_longer_than_a_screen_and_a_half() {
    let mut long = Vec::new();
    for file in modules().values() {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        long.extend(long_functions(file, &code));
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}

/// The checker itself: an upward import, a cycle, a long function are found; comments and
/// strings are not code.
#[test]
fn the_checks_find_what_they_look_for() {
    let code = code_only(
        "use crate::record::{self, sections::Sections};\n\
         // use crate::cli::main;\n\
         fn f() { let s = \"crate::cli::x\"; crate::run::record::build(); super::format::ms(1.0); }\n\
         mod tests { use super::*; use crate::spec::RunSpec; }\n",
    );
    let kids = BTreeSet::new();
    let paths: Vec<String> = paths_in(&code, "report::sections::summary", &kids)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "record",
            "record::sections::Sections",
            "run::record::build",
            "report::sections::format::ms",
            "report::sections::summary",
            "spec::RunSpec",
        ]
    );
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("figures", vec!["record", "run"]),
        ("record", vec![]),
        ("run", vec!["figures"]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_string(), d.into_iter().map(String::from).collect()))
    .collect();
    let up = upward(&g);
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        up[0].starts_with("figures (layer `figures`, 30) imports run"),
        "{up:?}"
    );
    assert_eq!(cycles(&g), [vec!["figures".to_string(), "run".to_string()]]);
    let no_tests = without_test_modules(&code_only(
        "use crate::a::b;\n#[cfg(test)]\nmod tests {\n    use crate::cli::c;\n}\nfn d() {}\n",
    ));
    assert_eq!(no_tests, "use crate::a::b;\n\n\n\n\nfn d() {}\n");
    let long_fn = format!("fn long() {{\n{}}}\n", "    x();\n".repeat(MAX_FN_LINES));
    assert_eq!(long_functions(Path::new("x.rs"), &long_fn).len(), 1);
    assert!(long_functions(Path::new("x.rs"), "fn short() { if a { b } }").is_empty());
}
