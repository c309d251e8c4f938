//! Which program runs a node of each implementation. The Rust node is the default and needs
//! nothing but the workspace; Go and JS nodes are found under `interop/` once built.

use std::path::{Path, PathBuf};
use testbed_contract::plan::Implementation;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProgram {
    pub path: PathBuf,
    pub args: Vec<String>,
}

impl std::fmt::Display for NodeProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProgramError(pub String);

/// Finds node programs. `rust_node` overrides the Rust binary (else `PUBSUB_NODE_BIN`, else
/// `pubsub-node` beside the orchestrator's own executable); `interop_dir` holds the Go and JS
/// nodes (default `interop/` in the current directory).
#[derive(Debug, Clone)]
pub struct Programs {
    pub rust_node: PathBuf,
    pub interop_dir: PathBuf,
}

impl Programs {
    pub fn discover(rust_override: Option<PathBuf>, interop_dir: Option<PathBuf>) -> Programs {
        let rust_node = rust_override
            .or_else(|| std::env::var_os("PUBSUB_NODE_BIN").map(PathBuf::from))
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|exe| exe.parent().map(|d| d.join("pubsub-node")))
                    .unwrap_or_else(|| PathBuf::from("pubsub-node"))
            });
        Programs {
            rust_node,
            interop_dir: interop_dir.unwrap_or_else(|| PathBuf::from("interop")),
        }
    }

    /// The program for `implementation` (and version), checked to exist.
    pub fn resolve(&self, implementation: Implementation, version: Option<&str>) -> Result<NodeProgram, ProgramError> {
        let program = match implementation {
            Implementation::Rust => NodeProgram {
                path: self.rust_node.clone(),
                args: vec![],
            },
            Implementation::Go => {
                let name = match version {
                    Some(v) => format!("pubsub-node-go-{}", sanitize(v)),
                    None => "pubsub-node-go".to_string(),
                };
                NodeProgram {
                    path: self.interop_dir.join("go").join("bin").join(name),
                    args: vec![],
                }
            }
            Implementation::Js => NodeProgram {
                path: PathBuf::from("node"),
                args: vec![self.interop_dir.join("js").join("src").join("main.js").display().to_string()],
            },
        };
        let must_exist: &Path = match implementation {
            Implementation::Js => Path::new(&program.args[0]),
            _ => &program.path,
        };
        if !must_exist.exists() {
            let how = match implementation {
                Implementation::Rust => "build it with `cargo build --release` (or pass --node-bin PATH)".to_string(),
                Implementation::Go => format!(
                    "build it with `interop/build.sh{}` (needs Go)",
                    version.map(|v| format!(" --go-version {v}")).unwrap_or_default()
                ),
                Implementation::Js => "build it with `interop/build.sh` (needs Node.js and npm)".to_string(),
            };
            return Err(ProgramError(format!(
                "the {} node program {} does not exist: {how}",
                implementation.as_str(),
                must_exist.display()
            )));
        }
        Ok(program)
    }
}

/// A version string as it appears in a file name (`github.com/x/y@v1.2.3` → `github.com_x_y_v1.2.3`).
pub fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect()
}
