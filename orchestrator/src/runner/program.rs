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
    pub fn resolve(
        &self,
        implementation: Implementation,
        version: Option<&str>,
    ) -> Result<NodeProgram, ProgramError> {
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
                args: vec![
                    self.interop_dir
                        .join("js")
                        .join("src")
                        .join("main.js")
                        .display()
                        .to_string(),
                ],
            },
        };
        let must_exist: &Path = match implementation {
            Implementation::Js => Path::new(&program.args[0]),
            _ => &program.path,
        };
        if !must_exist.exists() {
            let how = match (implementation, version) {
                (Implementation::Rust, _) => {
                    "build it with `cargo build --release` (or pass --node-bin PATH)".to_string()
                }
                (Implementation::Go, None) => {
                    "build it with `interop/build.sh go` (needs Go 1.26 or newer; see interop/README.md)".to_string()
                }
                (Implementation::Go, Some(v)) => format!(
                    "build it with `interop/go/build.sh {v}` (needs Go 1.26 or newer; see interop/README.md)"
                ),
                (Implementation::Js, _) => {
                    "build it with `interop/build.sh js` (needs Node.js 20 or newer and npm)".to_string()
                }
            };
            return Err(ProgramError(format!(
                "the {} node program {} does not exist: {how}",
                implementation.as_str(),
                must_exist.display()
            )));
        }
        if implementation == Implementation::Js {
            let modules = self.interop_dir.join("js").join("node_modules");
            if !modules.is_dir() {
                return Err(ProgramError(format!(
                    "the js node's dependencies are not installed ({} is missing): run `interop/build.sh js` (needs Node.js 20 or newer and npm)",
                    modules.display()
                )));
            }
            if find_on_path("node").is_none() {
                return Err(ProgramError(
                    "the js node needs Node.js, but `node` is not on PATH: install Node.js 20 or newer (https://nodejs.org/)".into(),
                ));
            }
        }
        Ok(program)
    }
}

/// The first executable `name` in the directories of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A version string as it appears in a file name (`github.com/x/y@v1.2.3` → `github.com_x_y_v1.2.3`):
/// every character outside `[A-Za-z0-9._-]` becomes `_`, exactly as interop/go/build.sh names
/// the binaries.
pub fn sanitize(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_binaries_as_the_go_build_script_does() {
        // interop/go/build.sh: sed 's/[^A-Za-z0-9._-]/_/g'
        assert_eq!(sanitize("v0.14.2"), "v0.14.2");
        assert_eq!(
            sanitize("example.com/you/fork@v1.2.3"),
            "example.com_you_fork_v1.2.3"
        );
        assert_eq!(
            sanitize("/home/me/go-libp2p_pubsub"),
            "_home_me_go-libp2p_pubsub"
        );
        assert_eq!(sanitize("a b+c"), "a_b_c");
        let p = Programs {
            rust_node: "x".into(),
            interop_dir: "/nonexistent".into(),
        };
        let e = p
            .resolve(Implementation::Go, Some("v0.14.2"))
            .unwrap_err()
            .0;
        assert!(
            e.contains("/nonexistent/go/bin/pubsub-node-go-v0.14.2")
                && e.contains("interop/go/build.sh v0.14.2"),
            "{e}"
        );
        let e = p.resolve(Implementation::Js, None).unwrap_err().0;
        assert!(e.contains("interop/build.sh js"), "{e}");
    }
}
