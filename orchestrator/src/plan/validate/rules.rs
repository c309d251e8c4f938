//! What several checks share: the list of problems they add to, the fleet size limit, and
//! the largest message a group's router carries.

use crate::plan::locate::FieldPath;
use testbed_contract::plan::{Group, Variant};

/// Problems found, each with the field it is about.
pub(crate) type Problems = Vec<(FieldPath, String)>;

/// Most nodes one plan may launch; beyond this a typo (an extra zero) is likelier than intent.
pub const MAX_NODES: u32 = 10_000;

/// Largest payload a group's router carries on `topic`. rust-libp2p floodsub caps a whole
/// frame at 2048 bytes; gossipsub 0.50 checks `max_transmit_size` against its read buffer,
/// which may already hold up to 8 KiB of the next message, so a message closer than that to
/// the limit can kill the stream (measured: messages are lost).
pub fn max_message_size(g: &Group, topic: &str) -> u32 {
    let topic = topic.len() as u32;
    match g.variant {
        Variant::Floodsub => 1950u32.saturating_sub(topic),
        Variant::Gossipsub => g
            .gossipsub
            .max_transmit_size
            .saturating_sub(8192 + 256 + topic),
    }
}
