//! Byte layout of every published message, identical in every node implementation so that
//! latency and seen-sets work across Rust, Go and JS peers. All integers big-endian.
//!
//! Layout 2 (written by every node of protocol 2):
//!
//! ```text
//! offset size field
//!  0     2    magic "PT"
//!  2     1    layout version (2)
//!  3     1    flags: bit 0 = trace context present; bit 1 = paced (due time from a rate)
//!  4     4    origin node index (u32)
//!  8     8    sequence number, per origin, from 0 (u64)
//! 16     8    send time: ns since the Unix epoch when handed to the router (u64)
//! 24     8    due time: ns since the Unix epoch when the schedule said it was due (u64)
//! 32    16    W3C trace id (zero when absent)
//! 48     8    W3C parent span id (zero when absent)
//! 56     1    W3C trace flags
//! 57     ..   padding (zero bytes) up to the configured message size
//! ```
//!
//! Layout 1 (protocol 1 nodes) has no due time: the trace context starts at offset 24 and the
//! header is 49 bytes. Readers accept it as due = send, not paced.

pub const MAGIC: [u8; 2] = *b"PT";
/// The layout this crate writes.
pub const LAYOUT_VERSION: u8 = 2;
/// The previous layout, still read.
pub const LAYOUT_V1: u8 = 1;
/// Smallest message: the header alone. Plans may not ask for smaller messages.
pub const HEADER_LEN: usize = 57;
/// Header length of layout 1.
pub const HEADER_LEN_V1: usize = 49;
const FLAG_TRACE: u8 = 1;
const FLAG_PACED: u8 = 2;

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
    /// When the message was handed to the router (ns since the Unix epoch).
    pub send_ns: u64,
    /// When the publisher's schedule said the message was due; equal to `send_ns` for
    /// back-to-back publishing. Latency is measured from here, so a publisher that falls
    /// behind its rate shows up in the latency (no coordinated omission).
    pub due_ns: u64,
    /// The due time comes from a rate schedule (`publish` with `rate`).
    pub paced: bool,
    pub trace: Option<TraceContext>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("message is {len} bytes, shorter than the {need}-byte header")]
    TooShort { len: usize, need: usize },
    #[error("message does not start with the magic bytes \"PT\"")]
    BadMagic,
    #[error("unknown payload layout version {0}")]
    Version(u8),
}

impl Header {
    /// A header whose due time is its send time (back-to-back publishing, not paced).
    pub fn unpaced(origin: u32, seq: u64, send_ns: u64) -> Header {
        Header {
            origin,
            seq,
            send_ns,
            due_ns: send_ns,
            paced: false,
            trace: None,
        }
    }

    /// Encodes the header (layout 2) and pads with zeros to `size` bytes (at least the
    /// header).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size.max(HEADER_LEN));
        out.extend_from_slice(&MAGIC);
        out.push(LAYOUT_VERSION);
        let mut flags = 0;
        if self.trace.is_some() {
            flags |= FLAG_TRACE;
        }
        if self.paced {
            flags |= FLAG_PACED;
        }
        out.push(flags);
        out.extend_from_slice(&self.origin.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.send_ns.to_be_bytes());
        out.extend_from_slice(&self.due_ns.to_be_bytes());
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

    /// Decodes layout 2, or layout 1 (due = send, not paced).
    pub fn decode(bytes: &[u8]) -> Result<Header, PayloadError> {
        // Shorter than any layout's header: too short, whatever it starts with.
        if bytes.len() < HEADER_LEN_V1 {
            return Err(PayloadError::TooShort {
                len: bytes.len(),
                need: HEADER_LEN,
            });
        }
        if bytes[0..2] != MAGIC {
            return Err(PayloadError::BadMagic);
        }
        let (need, trace_at) = match bytes[2] {
            LAYOUT_VERSION => (HEADER_LEN, 32),
            LAYOUT_V1 => (HEADER_LEN_V1, 24),
            v => return Err(PayloadError::Version(v)),
        };
        if bytes.len() < need {
            return Err(PayloadError::TooShort {
                len: bytes.len(),
                need,
            });
        }
        let u32_at = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_be_bytes(bytes[o..o + 8].try_into().unwrap());
        let flags = bytes[3];
        let trace = (flags & FLAG_TRACE != 0).then(|| TraceContext {
            trace_id: bytes[trace_at..trace_at + 16].try_into().unwrap(),
            span_id: bytes[trace_at + 16..trace_at + 24].try_into().unwrap(),
            flags: bytes[trace_at + 24],
        });
        let send_ns = u64_at(16);
        let v2 = bytes[2] == LAYOUT_VERSION;
        Ok(Header {
            origin: u32_at(4),
            seq: u64_at(8),
            send_ns,
            due_ns: if v2 { u64_at(24) } else { send_ns },
            paced: v2 && flags & FLAG_PACED != 0,
            trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn round_trip_with_and_without_trace() {
        let mut h = Header {
            origin: 7,
            seq: 42,
            send_ns: 1_700_000_000_123_456_789,
            due_ns: 1_700_000_000_100_000_000,
            paced: true,
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
        h.paced = false;
        assert_eq!(Header::decode(&h.encode(10)).unwrap(), h);
        assert_eq!(h.encode(10).len(), HEADER_LEN);
    }

    /// A fixed vector: the Go and JS nodes' tests check the same bytes. Origin 1, seq 2,
    /// send time 4, due time 3, paced, no trace, size 57.
    pub const VECTOR_V2: &str = "505402020000000100000000000000020000000000000004000000000000000300000000000000000000000000000000000000000000000000";

    #[test]
    fn known_vector() {
        let h = Header {
            origin: 1,
            seq: 2,
            send_ns: 4,
            due_ns: 3,
            paced: true,
            trace: None,
        };
        assert_eq!(hex(&h.encode(HEADER_LEN)), VECTOR_V2);
        assert_eq!(Header::decode(&unhex(VECTOR_V2)).unwrap(), h);
    }

    /// Layout 1's vector (origin 1, seq 2, publish time 3, size 49) still decodes: due = send.
    #[test]
    fn layout_1_is_read() {
        let v1 = "50540100000000010000000000000002000000000000000300000000000000000000000000000000000000000000000000";
        let bytes = unhex(v1);
        assert_eq!(bytes.len(), HEADER_LEN_V1);
        assert_eq!(Header::decode(&bytes).unwrap(), Header::unpaced(1, 2, 3));
        // A v1 trace context sits at offset 24; a v1 flags byte's bit 1 means nothing.
        let mut traced = bytes.clone();
        traced[3] = FLAG_TRACE | FLAG_PACED;
        traced[24..40].copy_from_slice(&[9; 16]);
        traced[40..48].copy_from_slice(&[8; 8]);
        traced[48] = 1;
        let h = Header::decode(&traced).unwrap();
        assert!(!h.paced);
        assert_eq!(h.due_ns, 3);
        assert_eq!(
            h.trace,
            Some(TraceContext {
                trace_id: [9; 16],
                span_id: [8; 8],
                flags: 1
            })
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            Header::decode(b"PT"),
            Err(PayloadError::TooShort { len: 2, need: 57 })
        );
        assert_eq!(Header::decode(&[0u8; 60]), Err(PayloadError::BadMagic));
        let mut v3 = Header::unpaced(1, 2, 3).encode(60);
        v3[2] = 3;
        assert_eq!(Header::decode(&v3), Err(PayloadError::Version(3)));
        // Layout 2 needs 57 bytes; 49 are enough only for layout 1.
        let short = &Header::unpaced(1, 2, 3).encode(60)[..HEADER_LEN_V1];
        assert_eq!(
            Header::decode(short),
            Err(PayloadError::TooShort { len: 49, need: 57 })
        );
    }
}
