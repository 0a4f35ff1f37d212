//! The schemas of every message family and service, exported to
//! `docs/schemas/*.json` in postcard-schema's owned form, with the
//! fingerprints and keys computed over them (PROTOCOL.md §3, §12.2).
//!
//! `cargo test -p vox-tests --test schemas` checks that the committed files
//! are exactly what the code exports; `VOX_REGENERATE=1 cargo test -p
//! vox-tests --test schemas` rewrites them on purpose.

use postcard_schema::Schema;
use postcard_schema::key::Key;
use postcard_schema::schema::owned::OwnedNamedType;
use serde_json::{Value, json};
use std::path::PathBuf;
use vox_rpc::{Endpoint, RpcFamily, Topic};
use vox_types::{MsgFamily, SchemaFingerprint};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

/// A family's file: its message schema and the prologue fingerprint.
fn family<F: MsgFamily>(name: &str) -> Value {
    let schema = OwnedNamedType::from(<F::Msg<'static> as Schema>::SCHEMA);
    let fp = F::FINGERPRINT;
    // The owned form hashes to the same key as the compile-time schema.
    assert_eq!(Key::for_owned_schema_path("vox.msg", &schema).to_bytes(), fp.0, "{name}");
    assert_eq!(fp, SchemaFingerprint::of::<F::Msg<'static>>());
    json!({
        "kind": "family",
        "name": name,
        "path": "vox.msg",
        "fingerprint": hex(&fp.0),
        "schema": schema,
    })
}

/// One endpoint: the schema of `(&Req, &Resp, &Err)` and its keys.
fn endpoint<E: Endpoint>() -> Value {
    type Tuple<E> = (
        &'static <E as Endpoint>::Req<'static>,
        &'static <E as Endpoint>::Resp<'static>,
        &'static <E as Endpoint>::Err<'static>,
    );
    let schema = OwnedNamedType::from(<Tuple<E> as Schema>::SCHEMA);
    let key64 = Key::for_path::<Tuple<E>>(E::NAME).to_bytes();
    assert_eq!(Key::for_owned_schema_path(E::NAME, &schema).to_bytes(), key64, "{}", E::NAME);
    assert_eq!(u32::from_le_bytes([key64[0], key64[1], key64[2], key64[3]]), E::KEY.0, "{}", E::NAME);
    json!({
        "name": E::NAME,
        "key": format!("{:08x}", E::KEY.0),
        "key64": hex(&key64),
        "schema": schema,
    })
}

/// One topic: the schema of its message and its keys.
fn topic<T: Topic>() -> Value {
    let schema = OwnedNamedType::from(<T::Msg<'static> as Schema>::SCHEMA);
    let key64 = Key::for_path::<T::Msg<'static>>(T::NAME).to_bytes();
    assert_eq!(Key::for_owned_schema_path(T::NAME, &schema).to_bytes(), key64, "{}", T::NAME);
    assert_eq!(u32::from_le_bytes([key64[0], key64[1], key64[2], key64[3]]), T::KEY.0, "{}", T::NAME);
    json!({
        "name": T::NAME,
        "key": format!("{:08x}", T::KEY.0),
        "key64": hex(&key64),
        "schema": schema,
    })
}

/// Every exported file: its name under `docs/schemas/` and its text.
// r[impl proto.schemas]
fn export() -> Vec<(&'static str, String)> {
    use vox_demo_protocol as demo;
    let files = [
        ("DemoFamily.json", family::<demo::DemoFamily>("DemoFamily")),
        ("RpcFamily.json", family::<RpcFamily>("RpcFamily")),
        (
            "demo-service.json",
            json!({
                "kind": "service",
                "name": "vox-demo-protocol",
                "endpoints": [
                    endpoint::<demo::SetOutput>(),
                    endpoint::<demo::ReadSensor>(),
                    endpoint::<demo::Echo>(),
                    endpoint::<demo::HostTime>(),
                ],
                "topics": [topic::<demo::Telemetry>(), topic::<demo::Log>()],
            }),
        ),
        (
            "vox-rpc-builtin.json",
            json!({
                "kind": "service",
                "name": "vox-rpc built-ins",
                "endpoints": [],
                "topics": [topic::<vox_rpc::DefmtFrames>()],
            }),
        ),
    ];
    files
        .into_iter()
        .map(|(name, value)| {
            let mut text = serde_json::to_string_pretty(&value).unwrap();
            text.push('\n');
            (name, text)
        })
        .collect()
}

// r[verify proto.schemas]
#[test]
fn committed_schemas_are_what_the_code_exports() {
    let dir = schema_dir();
    let regenerate = std::env::var_os("VOX_REGENERATE").is_some_and(|v| v == "1");
    if regenerate {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let files = export();
    for (name, text) in &files {
        let path = dir.join(name);
        if regenerate {
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run VOX_REGENERATE=1 to export)", path.display()));
        assert!(
            committed == *text,
            "{} differs from the code's export: run `VOX_REGENERATE=1 cargo test -p vox-tests --test schemas` \
             if the change is intended",
            path.display()
        );
    }
    // No stale file lingers: every JSON file there is one we export.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(files.iter().any(|(n, _)| *n == name), "docs/schemas/{name} is not exported any more");
        }
    }
}

/// The values PROTOCOL.md gives (§3's examples, §12's `RpcFamily`
/// fingerprint) are the code's.
// r[verify proto.schemas]
#[test]
fn the_rpc_family_fingerprint_in_the_document_is_the_exported_one() {
    assert_eq!(format!("{}", RpcFamily::FINGERPRINT), "e6d4bdeaf275080b");
    // The worked examples of §3.
    assert_eq!(hex(&SchemaFingerprint::of::<u32>().0), "b69efff17bf333fc");
    assert_eq!(
        hex(&Key::for_path::<(&u8, &i32, &vox_rpc::NoError)>("demo/read_sensor").to_bytes()),
        "ec3aee1fa4e04cc8"
    );
    assert_eq!(<vox_demo_protocol::ReadSensor as Endpoint>::KEY.0, 0x1fee_3aec);
    let v = family::<RpcFamily>("RpcFamily");
    assert_eq!(v["fingerprint"], "e6d4bdeaf275080b");
}
