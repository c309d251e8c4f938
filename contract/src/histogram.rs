//! Latency histograms travel as HDR Histogram V2 *compressed* encoding, base64 (standard
//! alphabet, padded). Every mainstream HDR library (Java, Go `hdrhistogram-go`, JS
//! `hdr-histogram-js`, Rust `hdrhistogram`) reads and writes this form, so results merge
//! exactly across implementations.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// Highest latency the histograms track, in microseconds (1 hour).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Significant figures: 3 gives values within 0.1 % of the true value.
pub const SIGFIG: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not a valid HDR V2 encoding: {0}")]
    Decode(String),
    #[error("histogram could not be encoded: {0}")]
    Encode(String),
}

/// A new latency histogram in microseconds, with the contract's range and precision.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGFIG).expect("static bounds are valid")
}

pub fn encode(h: &Histogram<u64>) -> Result<String, HistogramError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
    Ok(STANDARD.encode(buf))
}

/// Decodes both the compressed and the plain V2 forms (the deserializer tells them apart by
/// their cookie).
pub fn decode(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = STANDARD.decode(text.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| HistogramError::Decode(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_lossless() {
        let mut h = new_latency_histogram();
        for v in [1u64, 7, 650, 651, 10_000, 2_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode("not base64 !!").is_err());
        assert!(decode("AAAA").is_err());
    }
}
