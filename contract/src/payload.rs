//! Byte layout of every published message, identical in every node implementation so that
//! latency and seen-sets work across Rust, Go and JS peers. All integers big-endian.
//!
//! ```text
//! offset size field
//!  0     2    magic "PT"
//!  2     1    layout version (1)
//!  3     1    flags: bit 0 = trace context present
//!  4     4    origin node index (u32)
//!  8     8    sequence number, per origin, from 0 (u64)
//! 16     8    publish time, ns since the Unix epoch (u64)
//! 24    16    W3C trace id (zero when absent)
//! 40     8    W3C parent span id (zero when absent)
//! 48     1    W3C trace flags
//! 49     ..   padding (zero bytes) up to the configured message size
//! ```

pub const MAGIC: [u8; 2] = *b"PT";
pub const LAYOUT_VERSION: u8 = 1;
/// Smallest message: the header alone. Plans may not ask for smaller messages.
pub const HEADER_LEN: usize = 49;
const FLAG_TRACE: u8 = 1;

/// The W3C trace context of the publish span, carried so receivers continue the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub origin: u32,
    pub seq: u64,
    pub publish_ns: u64,
    pub trace: Option<TraceContext>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("message is {0} bytes, shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    #[error("message does not start with the magic bytes \"PT\"")]
    BadMagic,
    #[error("unknown payload layout version {0}")]
    Version(u8),
}

impl Header {
    /// Encodes the header and pads with zeros to `size` bytes (at least the header).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size.max(HEADER_LEN));
        out.extend_from_slice(&MAGIC);
        out.push(LAYOUT_VERSION);
        out.push(if self.trace.is_some() { FLAG_TRACE } else { 0 });
        out.extend_from_slice(&self.origin.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.publish_ns.to_be_bytes());
        let t = self.trace.unwrap_or(TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        });
        out.extend_from_slice(&t.trace_id);
        out.extend_from_slice(&t.span_id);
        out.push(t.flags);
        out.resize(size.max(HEADER_LEN), 0);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, PayloadError> {
        if bytes.len() < HEADER_LEN {
            return Err(PayloadError::TooShort(bytes.len()));
        }
        if bytes[0..2] != MAGIC {
            return Err(PayloadError::BadMagic);
        }
        if bytes[2] != LAYOUT_VERSION {
            return Err(PayloadError::Version(bytes[2]));
        }
        let u32_at = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_be_bytes(bytes[o..o + 8].try_into().unwrap());
        let trace = (bytes[3] & FLAG_TRACE != 0).then(|| TraceContext {
            trace_id: bytes[24..40].try_into().unwrap(),
            span_id: bytes[40..48].try_into().unwrap(),
            flags: bytes[48],
        });
        Ok(Header {
            origin: u32_at(4),
            seq: u64_at(8),
            publish_ns: u64_at(16),
            trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_trace() {
        let mut h = Header {
            origin: 7,
            seq: 42,
            publish_ns: 1_700_000_000_123_456_789,
            trace: None,
        };
        let bytes = h.encode(256);
        assert_eq!(bytes.len(), 256);
        assert_eq!(Header::decode(&bytes).unwrap(), h);
        h.trace = Some(TraceContext {
            trace_id: [1; 16],
            span_id: [2; 8],
            flags: 1,
        });
        assert_eq!(Header::decode(&h.encode(10)).unwrap(), h);
        assert_eq!(h.encode(10).len(), HEADER_LEN);
    }

    /// A fixed vector: the Go and JS nodes' tests check the same bytes.
    #[test]
    fn known_vector() {
        let h = Header {
            origin: 1,
            seq: 2,
            publish_ns: 3,
            trace: None,
        };
        let hex: String = h
            .encode(HEADER_LEN)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "50540100000000010000000000000002000000000000000300000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Header::decode(b"PT"), Err(PayloadError::TooShort(2)));
        assert_eq!(Header::decode(&[0u8; 60]), Err(PayloadError::BadMagic));
    }
}
