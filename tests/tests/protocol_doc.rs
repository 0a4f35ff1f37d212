//! The hex examples of `docs/PROTOCOL.md` round-trip through the real
//! encoders and decoders: every ```` ```hex NAME ```` block of the document
//! is the encoding of the example value named NAME below, byte for byte,
//! and decodes back to it. Run with `--nocapture` to print them.

use vox_conduit_stable::wire::{Hello, RejectReason, Window, WireFrame, WireSeq::Full, WireSeq::Low};
use vox_link_embedded::framed::codec::{Decoded, FrameDecoder, encode_frame};
use vox_types::{ConduitMode, Prologue, SchemaFingerprint, SessionRole};

const FP: SchemaFingerprint = SchemaFingerprint([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
const KEY: [u8; 16] = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF];
const MSG: &[u8] = &[0x01, 0x02, 0x03];

enum Example {
    Prologue(Prologue),
    Frame(WireFrame<'static>),
    /// A link frame (COBS + CRC + delimiter) carrying these payload bytes.
    Framed(&'static [u8]),
    /// An rpc frame (§12), postcard-encoded.
    Rpc(vox_rpc::Frame<'static>),
}

fn examples() -> Vec<(&'static str, Example)> {
    use Example::*;
    let w = |msgs, bytes| Window { msgs, bytes };
    vec![
        ("prologue-initiator", Prologue(vox_types::Prologue::new(ConduitMode::Stable, SessionRole::Initiator, FP))),
        ("prologue-acceptor", Prologue(vox_types::Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, FP))),
        ("prologue-bare", Prologue(vox_types::Prologue::new(ConduitMode::Bare, SessionRole::Initiator, FP))),
        ("hello-new", Frame(WireFrame::Hello(Hello { key: None, next_expected: 0, window: w(8, 512) }))),
        ("hello-acceptor", Frame(WireFrame::Hello(Hello { key: Some(KEY), next_expected: 0, window: w(16, 1024) }))),
        ("hello-resume", Frame(WireFrame::Hello(Hello { key: Some(KEY), next_expected: 300, window: w(8, 512) }))),
        ("reject-unknown", Frame(WireFrame::Reject(RejectReason::SessionUnknown))),
        ("reject-full", Frame(WireFrame::Reject(RejectReason::TableFull))),
        ("reject-busy", Frame(WireFrame::Reject(RejectReason::Busy))),
        ("data-common", Frame(WireFrame::Data { seq: Low(5), ack: Low(3), window: None, msg: MSG })),
        ("data", Frame(WireFrame::Data { seq: Low(5), ack: Low(3), window: Some(w(8, 512)), msg: MSG })),
        (
            "data-wrapping",
            Frame(WireFrame::Data { seq: Full(u32::MAX), ack: Full(128), window: Some(w(0, 0)), msg: &[] }),
        ),
        ("ack", Frame(WireFrame::Ack { ack: 6, next: 9, window: w(4, 200), done: false })),
        ("ack-done", Frame(WireFrame::Ack { ack: 7, next: 11, window: w(16, 1024), done: true })),
        ("close", Frame(WireFrame::Close { seq: 10, ack: 6 })),
        ("framed-data", Framed(&[0x80, 0x05, 0x03, 0x01, 0x02, 0x03])),
        ("framed-empty", Framed(&[])),
        (
            "rpc-request",
            Rpc(vox_rpc::Frame::Request(vox_rpc::Request {
                id: 130,
                endpoint: 1,
                deadline: 1200,
                body: vox_rpc::Body::Bytes(&[0x15]),
            })),
        ),
        ("rpc-reply", Rpc(vox_rpc::Frame::Reply { id: 130, body: vox_rpc::Body::Bytes(&[0x2a]) })),
        (
            "rpc-hello",
            Rpc(vox_rpc::Frame::Hello(vox_rpc::Hello {
                version: 1,
                max_in_flight: 4,
                fingerprint: 0x5b8c_0245,
                endpoints: vox_rpc::Body::Bytes(&[0xaa, 0xbb, 0xcc, 0xdd]),
                topics: vox_rpc::Body::Bytes(&[]),
            })),
        ),
        ("rpc-refused-expired", Rpc(vox_rpc::Frame::Refused { id: 3, why: vox_rpc::Refusal::Expired })),
        (
            "rpc-sample",
            Rpc(vox_rpc::Frame::Sample { topic: 1, seq: 300, dup: true, body: vox_rpc::Body::Bytes(&[0x07]) }),
        ),
    ]
}

fn encode(e: &Example) -> Vec<u8> {
    match e {
        Example::Prologue(p) => {
            let mut buf = [0u8; 32];
            let n = p.encode(&mut buf).unwrap();
            buf[..n].to_vec()
        }
        Example::Frame(f) => {
            let mut buf = vec![0u8; f.encoded_len()];
            assert_eq!(f.encode(&mut buf), Some(buf.len()));
            buf
        }
        Example::Framed(payload) => {
            let mut buf = [0u8; 64];
            let n = encode_frame(payload, &mut buf).unwrap();
            buf[..n].to_vec()
        }
        Example::Rpc(f) => postcard::to_allocvec(f).unwrap(),
    }
}

/// Decodes `bytes` and checks the value is the example's.
fn decodes_back(e: &Example, bytes: &[u8]) {
    match e {
        Example::Prologue(p) => assert_eq!(Prologue::decode(bytes).unwrap(), *p),
        Example::Frame(f) => assert_eq!(WireFrame::decode(bytes).unwrap(), *f),
        Example::Rpc(f) => {
            let back: vox_rpc::Frame<'_> = postcard::from_bytes(bytes).unwrap();
            assert_eq!(postcard::to_allocvec(&back).unwrap(), postcard::to_allocvec(f).unwrap());
        }
        Example::Framed(payload) => {
            // A receiver starts by discarding up to a delimiter.
            let mut dec = FrameDecoder::resyncing();
            let mut slot = [0u8; 64];
            let mut got = None;
            for &b in std::iter::once(&0u8).chain(bytes) {
                if let Decoded::Frame(n) = dec.feed(b, &mut slot).unwrap() {
                    got = Some(slot[..n].to_vec());
                }
            }
            assert_eq!(got.as_deref(), Some(*payload));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The ```` ```hex NAME ```` blocks of the document.
fn document_blocks() -> Vec<(String, Vec<u8>)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```hex ") else { continue };
        let mut bytes = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            let l = l.split('#').next().unwrap_or("");
            for tok in l.split_whitespace() {
                bytes.push(u8::from_str_radix(tok, 16).unwrap_or_else(|_| panic!("{name}: bad hex {tok:?}")));
            }
        }
        blocks.push((name.trim().to_string(), bytes));
    }
    blocks
}

// r[verify proto.doc]
#[test]
fn every_hex_example_of_the_protocol_document_round_trips() {
    let examples = examples();
    for (name, e) in &examples {
        println!("```hex {name}\n{}\n```", hex(&encode(e)));
    }
    let blocks = document_blocks();
    for (name, e) in &examples {
        let Some((_, bytes)) = blocks.iter().find(|(n, _)| n == name) else {
            panic!("docs/PROTOCOL.md has no ```hex {name} block")
        };
        assert_eq!(hex(bytes), hex(&encode(e)), "{name}: the document's bytes are the encoder's");
        decodes_back(e, bytes);
    }
    for (name, _) in &blocks {
        assert!(examples.iter().any(|(n, _)| n == name), "the document's {name} block has no example here");
    }
}

fn document() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap()
}

/// The rows of the Markdown table right after the HTML comment that
/// starts with `marker`, each split into cells.
fn table_after(doc: &str, marker: &str) -> Vec<Vec<String>> {
    let start = doc.find(marker).unwrap_or_else(|| panic!("no {marker} in the document"));
    doc[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

// r[verify proto.timing]
#[test]
fn the_documents_timing_table_is_the_codes() {
    use vox_conduit_stable::StableConfig;
    let rows = table_after(&document(), "<!-- timing-table");
    let value = |c: &StableConfig, name: &str| match name {
        "`ack_delay_ms`" => c.ack_delay_ms,
        "`keepalive_ms`" => c.keepalive_ms,
        "`timeout_ms`" => c.timeout_ms,
        "`retry_delay_ms`" => c.retry_delay_ms,
        "`linger_ms`" => c.linger_ms,
        "`connect_timeout_ms`" => c.connect_timeout_ms,
        other => panic!("the table names {other}, which StableConfig does not have"),
    };
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for field in ["ack_delay_ms", "keepalive_ms", "timeout_ms", "retry_delay_ms", "linger_ms", "connect_timeout_ms"] {
        assert!(names.contains(&format!("`{field}`").as_str()), "the timing table lacks {field}");
    }
    for row in &rows {
        assert_eq!(row[2], value(&StableConfig::DEFAULT, &row[0]).to_string(), "DEFAULT {}", row[0]);
        assert_eq!(row[3], value(&StableConfig::LOW_POWER, &row[0]).to_string(), "LOW_POWER {}", row[0]);
    }
}

// r[verify proto.version]
#[test]
fn the_documents_newest_version_is_the_one_the_code_sends() {
    let rows = table_after(&document(), "<!-- versions");
    let newest = rows.iter().filter_map(|r| r[0].parse::<u16>().ok()).max().expect("a version row");
    assert_eq!(
        newest,
        vox_types::PROTOCOL_VERSION,
        "PROTOCOL.md's Versions table must list the version the code sends"
    );
    let mut bytes = [0u8; 32];
    let n = vox_types::Prologue::new(ConduitMode::Stable, SessionRole::Initiator, FP).encode(&mut bytes).unwrap();
    assert_eq!(vox_types::Prologue::decode(&bytes[..n]).unwrap().version, newest, "the prologue carries it");
}
