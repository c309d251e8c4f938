//! The results folder of one run: `results/<plan>/<run-id>/` with the plan as run
//! (`plan.yaml`, `plan.resolved.json`), `run.json`, the reports and `logs/node-NNNN.log`;
//! and reading `run.json` back, also of the previous schema.

use super::run_record::{RECORD_SCHEMA, RunRecord};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use testbed_contract::plan::Plan;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path, plan: &str, run_id: &str) -> Result<RunDir> {
        let path = root.join(plan).join(run_id);
        std::fs::create_dir_all(path.join("logs"))
            .with_context(|| format!("creating results folder {}", path.display()))?;
        Ok(RunDir { path })
    }

    pub fn write_plan(&self, text: &str, plan: &Plan) -> Result<()> {
        std::fs::write(self.path.join("plan.yaml"), text)?;
        std::fs::write(
            self.path.join("plan.resolved.json"),
            serde_json::to_vec_pretty(plan)?,
        )?;
        Ok(())
    }

    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        write_json(&self.path.join("run.json"), record)
    }
}

/// Node `index`'s log, relative to the results folder.
pub fn node_log(index: u32) -> String {
    format!("logs/node-{index:04}.log")
}

/// Writes JSON atomically (temp file + rename), so a crash never leaves half a file.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read_record(dir: &Path) -> Result<RunRecord> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run record", path.display()))?;
    let value = upgrade(value).with_context(|| format!("{} cannot be read", path.display()))?;
    serde_json::from_value(value).with_context(|| format!("{} is not a run record", path.display()))
}

/// A record of an older schema in the current one. Schema 1 kept the features' sections in
/// `extra`, with the content schema 2 has under `sections`.
fn upgrade(mut value: serde_json::Value) -> Result<serde_json::Value> {
    let schema = value.get("schema").and_then(serde_json::Value::as_u64);
    match schema {
        Some(s) if s == u64::from(RECORD_SCHEMA) => Ok(value),
        Some(1) => {
            let obj = value
                .as_object_mut()
                .context("a run record is a JSON object")?;
            if let Some(extra) = obj.remove("extra") {
                obj.insert("sections".into(), extra);
            }
            obj.insert("schema".into(), RECORD_SCHEMA.into());
            Ok(value)
        }
        other => anyhow::bail!(
            "it has run-record schema {}; this orchestrator reads schema {RECORD_SCHEMA} (and 1)",
            other.map_or("(none)".to_string(), |s| s.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_reads_through_the_compatibility_path_and_others_are_refused() {
        let v1 = serde_json::json!({
            "schema": 1,
            "extra": { "metrics": { "file": "metrics.prom" } },
        });
        let up = upgrade(v1).unwrap();
        assert_eq!(up["schema"], RECORD_SCHEMA);
        assert_eq!(up["sections"]["metrics"]["file"], "metrics.prom");
        assert!(up.get("extra").is_none());
        let e = upgrade(serde_json::json!({ "schema": 9 })).unwrap_err();
        assert!(
            e.to_string().contains("schema 9") && e.to_string().contains("reads schema 2"),
            "{e}"
        );
        assert!(upgrade(serde_json::json!({})).is_err());
    }
}
