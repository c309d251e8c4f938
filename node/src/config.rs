//! What the runner tells the node through its environment (see `testbed_contract::env`).
//! Everything else comes from the orchestrator's `welcome`.

use crate::fault::Fault;
use std::net::IpAddr;
use std::path::PathBuf;
use testbed_contract::env;
use testbed_contract::protocol::Secret;

/// Where the orchestrator's control server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAddr {
    /// `tcp://HOST:PORT`; HOST may be a name, resolved when connecting.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl std::fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlAddr::Tcp(a) => write!(f, "tcp://{a}"),
            ControlAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    pub control: ControlAddr,
    pub index: u32,
    pub run_id: Option<String>,
    pub listen_ip: IpAddr,
    /// Sent back in `hello`; its `Debug` form hides the value, so it is never logged.
    pub secret: Secret,
    /// Injected clock skew for this node, ns (`TESTBED_CLOCK_SKEW_NS`, a test aid).
    pub clock_skew_ns: i64,
    /// A fault to inject on purpose (`TESTBED_FAULT`, a test aid).
    pub fault: Option<Fault>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not set: the runner must say where the orchestrator listens")]
    MissingControl { var: &'static str },
    #[error(
        "{var}={value:?} is not a control address: use tcp://HOST:PORT or unix:/path/to/socket"
    )]
    BadControl { var: &'static str, value: String },
    #[error("neither {var} nor {fallback} is set: the node cannot know its index")]
    MissingIndex {
        var: &'static str,
        fallback: &'static str,
    },
    #[error("{var}={value:?} is not a node index (a non-negative integer)")]
    BadIndex { var: &'static str, value: String },
    #[error("{var}={value:?} is not an IP address")]
    BadListenIp { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is not a clock skew: use NS (every node) or INDEX:NS[,INDEX:NS…], NS a signed integer"
    )]
    BadClockSkew { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is not a fault: use KIND (every node) or INDEX:KIND[,INDEX:KIND…], KIND corrupt_histogram, extra_publishes, stall_connect or ignore_abort"
    )]
    BadFault { var: &'static str, value: String },
}

impl EnvConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `get` so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = get(env::CONTROL_ADDR)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::MissingControl {
                var: env::CONTROL_ADDR,
            })?;
        let control = parse_control_addr(raw.trim()).ok_or_else(|| ConfigError::BadControl {
            var: env::CONTROL_ADDR,
            value: raw.clone(),
        })?;

        let (var, raw_index) = match get(env::NODE_INDEX).filter(|v| !v.trim().is_empty()) {
            Some(v) => (env::NODE_INDEX, v),
            None => (
                env::JOB_COMPLETION_INDEX,
                get(env::JOB_COMPLETION_INDEX).ok_or(ConfigError::MissingIndex {
                    var: env::NODE_INDEX,
                    fallback: env::JOB_COMPLETION_INDEX,
                })?,
            ),
        };
        let index = raw_index
            .trim()
            .parse()
            .map_err(|_| ConfigError::BadIndex {
                var,
                value: raw_index.clone(),
            })?;

        let listen_ip = match get(env::LISTEN_IP).filter(|v| !v.trim().is_empty()) {
            Some(v) => v.trim().parse().map_err(|_| ConfigError::BadListenIp {
                var: env::LISTEN_IP,
                value: v.clone(),
            })?,
            None => IpAddr::from([127, 0, 0, 1]),
        };

        let clock_skew_ns = match get(env::CLOCK_SKEW_NS).filter(|v| !v.trim().is_empty()) {
            Some(v) => parse_skew(&v, index).ok_or_else(|| ConfigError::BadClockSkew {
                var: env::CLOCK_SKEW_NS,
                value: v.clone(),
            })?,
            None => 0,
        };

        let fault = match get(env::FAULT).filter(|v| !v.trim().is_empty()) {
            Some(v) => Fault::for_node(&v, index).ok_or_else(|| ConfigError::BadFault {
                var: env::FAULT,
                value: v.clone(),
            })?,
            None => None,
        };

        Ok(EnvConfig {
            control,
            index,
            run_id: get(env::RUN_ID).filter(|v| !v.is_empty()),
            listen_ip,
            secret: Secret::new(get(env::RUN_SECRET).unwrap_or_default()),
            clock_skew_ns,
            fault,
        })
    }
}

/// `NS` for every node, or `INDEX:NS` pairs: this node's skew (0 when it is not listed);
/// None when any part does not parse, so a typo is named rather than ignored.
fn parse_skew(s: &str, index: u32) -> Option<i64> {
    let s = s.trim();
    if !s.contains(':') {
        return s.parse().ok();
    }
    let mut mine = 0;
    for part in s.split(',') {
        let (i, ns) = part.split_once(':')?;
        let (i, ns): (u32, i64) = (i.trim().parse().ok()?, ns.trim().parse().ok()?);
        if i == index {
            mine = ns;
        }
    }
    Some(mine)
}

fn parse_control_addr(s: &str) -> Option<ControlAddr> {
    if let Some(rest) = s.strip_prefix("tcp://") {
        // HOST:PORT with a numeric port; the host may be a name or a bracketed IPv6 address.
        let (host, port) = rest.rsplit_once(':')?;
        (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| ControlAddr::Tcp(rest.into()))
    } else if let Some(path) = s.strip_prefix("unix:") {
        // Accept both `unix:/p` and `unix:///p`.
        let path = path.strip_prefix("//").unwrap_or(path);
        (!path.is_empty()).then(|| ControlAddr::Unix(path.into()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<EnvConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn tcp_and_unix_addresses() {
        let c = cfg(&[
            (env::CONTROL_ADDR, "tcp://127.0.0.1:4000"),
            (env::NODE_INDEX, "3"),
        ])
        .unwrap();
        assert_eq!(c.control, ControlAddr::Tcp("127.0.0.1:4000".into()));
        assert_eq!(c.index, 3);
        assert_eq!(c.listen_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.run_id, None);

        let c = cfg(&[
            (env::CONTROL_ADDR, "unix:/tmp/ctl.sock"),
            (env::JOB_COMPLETION_INDEX, "7"),
            (env::LISTEN_IP, "10.0.0.2"),
            (env::RUN_ID, "r1"),
        ])
        .unwrap();
        assert_eq!(c.control, ControlAddr::Unix("/tmp/ctl.sock".into()));
        assert_eq!(c.index, 7);
        assert_eq!(c.listen_ip, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(c.run_id.as_deref(), Some("r1"));
        assert!(c.secret.is_empty());
    }

    #[test]
    fn the_secret_is_read_but_never_shown() {
        let c = cfg(&[
            (env::CONTROL_ADDR, "tcp://h:1"),
            (env::NODE_INDEX, "1"),
            (env::RUN_SECRET, "hunter2"),
        ])
        .unwrap();
        assert_eq!(c.secret.expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn clock_skew_for_all_or_by_index() {
        let base = [(env::CONTROL_ADDR, "tcp://h:1"), (env::NODE_INDEX, "2")];
        let with = |v: &str| {
            let mut vars = base.to_vec();
            vars.push((env::CLOCK_SKEW_NS, v));
            cfg(&vars)
        };
        assert_eq!(cfg(&base).unwrap().clock_skew_ns, 0);
        assert_eq!(with("-7").unwrap().clock_skew_ns, -7);
        assert_eq!(with("1:5, 2:-50000000").unwrap().clock_skew_ns, -50_000_000);
        assert_eq!(with("1:5").unwrap().clock_skew_ns, 0);
        for bad in ["fast", "1:5,2", "x:3"] {
            assert!(
                matches!(with(bad), Err(ConfigError::BadClockSkew { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_fault_for_all_or_by_index_and_a_typo_named() {
        let base = [(env::CONTROL_ADDR, "tcp://h:1"), (env::NODE_INDEX, "2")];
        assert_eq!(cfg(&base).unwrap().fault, None);
        let mut vars = base.to_vec();
        vars.push((env::FAULT, "2:corrupt_histogram"));
        assert_eq!(cfg(&vars).unwrap().fault, Some(Fault::CorruptHistogram));
        vars.pop();
        vars.push((env::FAULT, "corrupt"));
        assert!(matches!(cfg(&vars), Err(ConfigError::BadFault { .. })));
    }

    #[test]
    fn node_index_wins_over_job_index() {
        let c = cfg(&[
            (env::CONTROL_ADDR, "tcp://h:1"),
            (env::NODE_INDEX, "1"),
            (env::JOB_COMPLETION_INDEX, "9"),
        ])
        .unwrap();
        assert_eq!(c.index, 1);
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(matches!(
            cfg(&[(env::NODE_INDEX, "1")]),
            Err(ConfigError::MissingControl { .. })
        ));
        assert!(matches!(
            cfg(&[(env::CONTROL_ADDR, "http://x:1"), (env::NODE_INDEX, "1")]),
            Err(ConfigError::BadControl { .. })
        ));
        assert!(matches!(
            cfg(&[
                (env::CONTROL_ADDR, "tcp://x:notaport"),
                (env::NODE_INDEX, "1")
            ]),
            Err(ConfigError::BadControl { .. })
        ));
        assert!(matches!(
            cfg(&[(env::CONTROL_ADDR, "tcp://x:1")]),
            Err(ConfigError::MissingIndex { .. })
        ));
        let e = cfg(&[(env::CONTROL_ADDR, "tcp://x:1"), (env::NODE_INDEX, "-2")]).unwrap_err();
        assert!(e.to_string().contains("TESTBED_NODE_INDEX"), "{e}");
        assert!(matches!(
            cfg(&[
                (env::CONTROL_ADDR, "tcp://x:1"),
                (env::NODE_INDEX, "1"),
                (env::LISTEN_IP, "localhost")
            ]),
            Err(ConfigError::BadListenIp { .. })
        ));
    }
}
