use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a plan, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Field path such as `groups[0].count` (empty when the place has no field).
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, issues))]
    Invalid { file: PathBuf, issues: Vec<Issue> },
}

impl PlanError {
    pub fn issues(&self) -> &[Issue] {
        match self {
            PlanError::Read { .. } => &[],
            PlanError::Invalid { issues, .. } => issues,
        }
    }
}

fn render(file: &std::path::Path, issues: &[Issue]) -> String {
    let mut out = format!(
        "plan {} is invalid ({} problem{}):",
        file.display(),
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for i in issues {
        out.push_str("\n  ");
        out.push_str(&i.to_string_in(file));
    }
    out
}

impl Issue {
    pub fn to_string_in(&self, file: &std::path::Path) -> String {
        let mut s = file.display().to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        s.push_str(": ");
        if !self.field.is_empty() {
            s.push_str(&format!("field `{}`: ", self.field));
        }
        s.push_str(&self.message);
        s
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_in(std::path::Path::new("<plan>")))
    }
}
