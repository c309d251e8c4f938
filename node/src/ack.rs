//! The answer to a command.

use testbed_contract::protocol::NodeMsg;

/// How a command ended: `error` set means it failed; `info` carries command-specific facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub error: Option<String>,
    pub info: serde_json::Value,
}

impl Outcome {
    pub fn ok(info: serde_json::Value) -> Self {
        Outcome { error: None, info }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Outcome {
            error: Some(error.into()),
            info: serde_json::Value::Null,
        }
    }

    pub fn into_ack(self, id: u64) -> NodeMsg {
        NodeMsg::Ack {
            id,
            ok: self.error.is_none(),
            error: self.error,
            info: self.info,
        }
    }
}
