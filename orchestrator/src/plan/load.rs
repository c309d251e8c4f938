//! Plan text → [`Plan`]: `${param}` substitution (defaults from `params:`, overridden by
//! `--set` or a matrix cell), strict parsing, the command line's other overrides
//! (`--runner`, telemetry flags), then validation of the whole. Substitution works on the
//! text so every error still points at the line the author wrote, and substitutes values,
//! never plan text: a string is quoted, and YAML syntax inside a larger scalar is refused.

use super::error::{Issue, PlanError};
use super::locate::SourceTree;
use super::overrides::Overrides;
use super::validate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use testbed_contract::plan::Plan;

/// A parsed, validated plan with what produced it.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    pub path: PathBuf,
    /// The plan text after substitution (saved beside the results).
    pub text: String,
}

/// Loads and validates `path` with parameter overrides (`name`, value).
pub fn load(
    path: &Path,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<LoadedPlan, PlanError> {
    load_with(path, &Overrides::params(params.clone()))
}

/// Loads `path`, applies every override and validates the result.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<LoadedPlan, PlanError> {
    let raw = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_text_with(path, &raw, overrides)
}

/// Like [`load`], from the text of the plan (`path` names it in errors).
pub fn load_text(
    path: &Path,
    raw: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<LoadedPlan, PlanError> {
    load_text_with(path, raw, &Overrides::params(params.clone()))
}

pub fn load_text_with(
    path: &Path,
    raw: &str,
    overrides: &Overrides,
) -> Result<LoadedPlan, PlanError> {
    let invalid = |issues: Vec<Issue>| PlanError::Invalid {
        file: path.to_path_buf(),
        issues,
    };
    let params = effective_params(raw, &overrides.params).map_err(invalid)?;
    let text = substitute(raw, &params).map_err(invalid)?;
    let tree = SourceTree::parse(&text);
    let mut plan: Plan =
        serde_saphyr::from_str(&text).map_err(|e| invalid(vec![parse_issue(&e, &tree)]))?;
    plan.params = params;
    overrides.apply(&mut plan);
    let issues: Vec<Issue> = validate::validate(&plan, overrides)
        .into_iter()
        .map(|(field, message)| {
            let at = tree.locate(&field);
            let field = field.to_string();
            // A value the command line set is named by its flag.
            let message = match overrides.flag_of(&field) {
                Some(flag) => format!("{message} (set by `{flag}`)"),
                None => message,
            };
            Issue {
                line: at.map(|a| a.0),
                column: at.map(|a| a.1),
                field,
                message,
            }
        })
        .collect();
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    Ok(LoadedPlan {
        plan,
        path: path.to_path_buf(),
        text,
    })
}

/// `name=value` from the command line; the value is read as YAML (`5`, `true`, `floodsub`).
pub fn parse_override(arg: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("`--set {arg}`: write `--set name=value`"))?;
    let value: serde_json::Value = serde_saphyr::from_str(value)
        .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
    Ok((name.trim().to_string(), value))
}

/// The `params:` defaults of the plan with the overrides applied. An override naming no
/// declared parameter is an error: a typo would otherwise silently run the default.
fn effective_params(
    raw: &str,
    overrides: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, serde_json::Value>, Vec<Issue>> {
    #[derive(Deserialize)]
    struct ParamsOnly {
        #[serde(default)]
        params: BTreeMap<String, serde_json::Value>,
    }
    // Placeholders are blanked first: `{ count: ${n} }` is not YAML until substituted. A
    // syntax error here is reported by the full parse, with its position.
    let blank = substitute_with(raw, &mut |_, _, _| Some("~".to_string())).unwrap_or_default();
    let mut params = match serde_saphyr::from_str::<ParamsOnly>(&blank) {
        Ok(p) => p.params,
        // Not YAML at all: report that, with its position, rather than unknown parameters.
        Err(e) => return Err(vec![parse_issue(&e, &SourceTree::parse(&blank))]),
    };
    let mut issues = Vec::new();
    for (name, value) in overrides {
        match params.get_mut(name) {
            Some(slot) => *slot = value.clone(),
            None => issues.push(Issue {
                line: None,
                column: None,
                field: format!("params.{name}"),
                message: format!(
                    "a value was given for parameter `{name}`, which the plan does not declare; declared: {}",
                    if params.is_empty() { "none".to_string() } else { params.keys().cloned().collect::<Vec<_>>().join(", ") }
                ),
            }),
        }
    }
    if issues.is_empty() {
        Ok(params)
    } else {
        Err(issues)
    }
}

/// Replaces `${name}` with the parameter's value, line by line so positions stay right.
fn substitute(
    raw: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<String, Vec<Issue>> {
    let declared = || {
        if params.is_empty() {
            "none".to_string()
        } else {
            params.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut structural = Vec::new();
    let text = substitute_with(raw, &mut |name, whole, (line, column)| {
        let value = params.get(name)?;
        Some(match as_yaml_value(value, whole) {
            Some(text) => text,
            None => {
                structural.push(Issue {
                    line: Some(line),
                    column: Some(column),
                    field: format!("params.{name}"),
                    message: format!(
                        "the value of `{name}` ({value}) holds YAML syntax and `${{{name}}}` is part of a larger value here; a parameter is substituted as a value, never as plan text"
                    ),
                });
                String::new()
            }
        })
    });
    if !structural.is_empty() {
        return Err(structural);
    }
    text.map_err(|unknown| {
        unknown
            .into_iter()
            .map(|(line, column, name)| Issue {
                line: Some(line),
                column: Some(column),
                field: String::new(),
                message: format!(
                    "`${{{name}}}` names no parameter; declare it under `params:` (declared: {})",
                    declared()
                ),
            })
            .collect()
    })
}

/// A parameter's value as YAML text that is exactly that value: where the placeholder is a
/// whole value (`key: ${p}`, `- ${p}`), a string is written quoted (JSON's quoting is YAML's)
/// and anything else as JSON flow; inside a larger scalar (`run-${p}`) only text without
/// YAML syntax may go (None otherwise).
fn as_yaml_value(value: &serde_json::Value, whole: bool) -> Option<String> {
    match value {
        serde_json::Value::String(_) if whole => Some(value.to_string()),
        serde_json::Value::String(s) => Some(s.clone()).filter(|s| is_plain(s)),
        v if whole => Some(v.to_string()),
        v => Some(v.to_string()).filter(|s| is_plain(s)),
    }
}

/// Text that stays inside the scalar it is put in: no YAML indicator or flow character.
fn is_plain(s: &str) -> bool {
    s == s.trim() && !s.chars().any(|c| ":,#[]{}&*!|>'\"%@`?\n\r\t".contains(c))
}

/// Replaces every `${name}` by `value(name, whole, (line, column))` — `whole` when the
/// placeholder is the entire value on its line; returns the unknown names with their
/// positions.
#[allow(clippy::type_complexity)]
fn substitute_with(
    raw: &str,
    value: &mut dyn FnMut(&str, bool, (u32, u32)) -> Option<String>,
) -> Result<String, Vec<(u32, u32, String)>> {
    let mut out = String::with_capacity(raw.len());
    let mut unknown = Vec::new();
    for (line_no, line) in raw.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = after[..end].trim();
            let column = (line.len() - rest.len() + start + 1) as u32;
            let before = line[..line.len() - rest.len() + start].trim_end();
            let tail = after[end + 1..].trim();
            let whole = (before.is_empty() || before.ends_with(':') || before.ends_with('-'))
                && (tail.is_empty() || tail.starts_with('#'));
            match value(name, whole, (line_no as u32 + 1, column)) {
                Some(v) => out.push_str(&v),
                None => unknown.push((line_no as u32 + 1, column, name.to_string())),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(unknown)
    }
}

fn parse_issue(e: &serde_saphyr::Error, tree: &SourceTree) -> Issue {
    let mut loc = e
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line() as u32, l.column() as u32));
    let mut field = loc.map(|(l, c)| tree.path_at(l, c)).unwrap_or_default();
    let message = e.without_snippet().to_string();
    if message.contains("missing field") {
        // The parser notices a missing field where its mapping ends; point at the mapping.
        field.0.pop();
        loc = tree.locate(&field).or(Some((1, 1)));
    }
    // The library may prefix its own position; ours is in the Issue already.
    let message = strip_position_prefix(&message);
    Issue {
        line: loc.map(|l| l.0),
        column: loc.map(|l| l.1),
        field: field.to_string(),
        message,
    }
}

fn strip_position_prefix(message: &str) -> String {
    let m = message.trim();
    let m = match m.find(" at line ") {
        Some(i) => &m[..i],
        None => m,
    };
    m.trim_start_matches("error: ").to_string()
}
