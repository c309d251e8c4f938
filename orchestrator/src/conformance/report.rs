//! What the conformance run found: a result per check of the catalogue (passed, failed with
//! what was wrong, or skipped with why), merged from every process that checked it, and
//! the checklist `orchestrator conformance` prints.

use super::catalogue::CATALOGUE;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub status: CheckStatus,
    /// What was wrong (fail), or why it did not run (skip).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub implementation: String,
    pub program: String,
    /// `hello.impl_version` of the first node under test.
    pub impl_version: Option<String>,
    pub reference: String,
    pub checks: Vec<CheckResult>,
    pub logs: PathBuf,
    pub duration_s: f64,
}

impl ConformanceReport {
    /// No check failed (skips count as failures: something kept them from running).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status == CheckStatus::Pass)
    }

    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn not_passed(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status != CheckStatus::Pass)
    }

    /// The checklist as printed by `orchestrator conformance`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "conformance of the {} node: {}{}",
            self.implementation,
            self.program,
            self.impl_version
                .as_ref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "reference: {}\n", self.reference);
        for c in &self.checks {
            let mark = match c.status {
                CheckStatus::Pass => "[ ok ]",
                CheckStatus::Fail => "[FAIL]",
                CheckStatus::Skip => "[skip]",
            };
            let _ = writeln!(o, "{mark} {:<24} {}", c.id, c.title);
            if let Some(d) = &c.detail {
                for line in d.lines() {
                    let _ = writeln!(o, "       {:<24} {line}", "");
                }
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        let skipped = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Skip)
            .count();
        let _ = writeln!(o);
        if self.passed() {
            let _ = writeln!(
                o,
                "PASSED: all {} checks ({:.1} s)",
                self.checks.len(),
                self.duration_s
            );
        } else {
            let names: Vec<&str> = self.not_passed().map(|c| c.id.as_str()).collect();
            let _ = writeln!(
                o,
                "FAILED: {failed} failed, {skipped} skipped of {} checks ({:.1} s): {}",
                self.checks.len(),
                self.duration_s,
                names.join(", ")
            );
            let _ = writeln!(o, "node logs: {}", self.logs.display());
        }
        o
    }
}

/// Results as they come in; several results for one id are merged (all must pass).
#[derive(Default)]
pub(super) struct Checks {
    pub(super) results: BTreeMap<&'static str, Vec<(CheckStatus, Option<String>)>>,
}

impl Checks {
    pub(super) fn add(&mut self, id: &'static str, r: Result<(), String>) {
        debug_assert!(
            CATALOGUE.iter().any(|(c, _)| *c == id),
            "{id} is not in the catalogue"
        );
        let entry = match r {
            Ok(()) => (CheckStatus::Pass, None),
            Err(e) => (CheckStatus::Fail, Some(e)),
        };
        self.results.entry(id).or_default().push(entry);
    }

    pub(super) fn skip(&mut self, id: &'static str, why: impl Into<String>) {
        self.results
            .entry(id)
            .or_default()
            .push((CheckStatus::Skip, Some(why.into())));
    }

    /// Records `r` for node `who`: errors are prefixed with the node's name.
    pub(super) fn node(&mut self, id: &'static str, who: &str, r: Result<(), String>) {
        self.add(id, r.map_err(|e| format!("{who}: {e}")));
    }

    pub(super) fn into_list(self) -> Vec<CheckResult> {
        CATALOGUE
            .iter()
            .map(|(id, title)| {
                let rs = self.results.get(id).cloned().unwrap_or_default();
                let status = if rs.is_empty() {
                    CheckStatus::Skip
                } else if rs.iter().any(|r| r.0 == CheckStatus::Fail) {
                    CheckStatus::Fail
                } else if rs.iter().any(|r| r.0 == CheckStatus::Skip) {
                    CheckStatus::Skip
                } else {
                    CheckStatus::Pass
                };
                let mut details: Vec<String> = rs
                    .iter()
                    .filter(|r| r.0 == status)
                    .filter_map(|r| r.1.clone())
                    .collect();
                details.dedup();
                let detail = match status {
                    CheckStatus::Pass => None,
                    _ if details.is_empty() => Some("not reached: an earlier step failed".into()),
                    _ => Some(details.join("\n")),
                };
                CheckResult {
                    id: id.to_string(),
                    title: title.to_string(),
                    status,
                    detail,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_is_reported_even_when_not_reached() {
        let mut c = Checks::default();
        c.add("hello", Ok(()));
        c.add(
            "hello",
            Err("node 1 (go): pid 3, but the process is 4".into()),
        );
        c.skip("finish", "no result");
        let list = c.into_list();
        assert_eq!(list.len(), CATALOGUE.len());
        let hello = list.iter().find(|x| x.id == "hello").unwrap();
        assert_eq!(hello.status, CheckStatus::Fail);
        assert!(hello.detail.as_deref().unwrap().contains("node 1"));
        let finish = list.iter().find(|x| x.id == "finish").unwrap();
        assert_eq!(finish.status, CheckStatus::Skip);
        let never = list.iter().find(|x| x.id == "channel.lost").unwrap();
        assert_eq!(never.status, CheckStatus::Skip);
    }
}
