//! interop/fixtures/payload-vectors.json, read with the Rust contract's payload code: the bytes
//! the Go and JS suites check are the bytes `testbed_contract::payload` writes and reads.

use testbed_contract::payload::{HEADER_LEN, HEADER_LEN_V1, Header, LAYOUT_VERSION, TraceContext};

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn header_of(v: &serde_json::Value) -> Header {
    let u64_of = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let trace = v["trace"].as_object().map(|t| TraceContext {
        trace_id: unhex(t["trace_id"].as_str().unwrap()).try_into().unwrap(),
        span_id: unhex(t["span_id"].as_str().unwrap()).try_into().unwrap(),
        flags: t["flags"].as_u64().unwrap() as u8,
    });
    Header {
        origin: u64_of("origin") as u32,
        seq: u64_of("seq"),
        send_ns: u64_of("send_ns"),
        due_ns: u64_of("due_ns"),
        paced: v["paced"].as_bool().unwrap(),
        trace,
    }
}

#[test]
fn payload_vectors_match_the_contract() {
    let path = format!(
        "{}/../fixtures/payload-vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = doc["vectors"].as_array().expect("vectors");
    let mut names = Vec::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        names.push(name);
        let bytes = unhex(v["hex"].as_str().unwrap());
        let want = header_of(v);
        assert_eq!(Header::decode(&bytes).unwrap(), want, "{name} decodes");
        if bytes[2] == LAYOUT_VERSION {
            assert_eq!(bytes.len(), HEADER_LEN, "{name}");
            assert_eq!(
                want.encode(v["size"].as_u64().unwrap() as usize),
                bytes,
                "{name} encodes"
            );
        } else {
            assert_eq!(bytes.len(), HEADER_LEN_V1, "{name}");
        }
    }
    assert_eq!(names, ["layout_2", "layout_2_traced", "layout_1"]);
}
