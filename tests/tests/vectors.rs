//! Deterministic test vectors (`docs/vectors/*.json`, described in
//! `docs/vectors/README.md`): the sans-I/O stable session core and the
//! acceptor's admission core fed payloads at explicit times, with every
//! payload they emit.
//!
//! `cargo test -p vox-tests --test vectors` replays every committed file
//! and compares every output byte for byte (it never writes);
//! `VOX_REGENERATE=1 cargo test -p vox-tests --test vectors` regenerates
//! them on purpose from the scripts below.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vox_conduit_stable::StableConfig;
use vox_conduit_stable::acceptor_core::{AdmitDecision, HelloReader, HelloStep, admit};
use vox_conduit_stable::session::SessionStorage;
use vox_conduit_stable::wire::{RejectReason, WireFrame};
use vox_rpc::{Body, Frame, Refusal, Request, RpcFamily};
use vox_types::{ConduitMode, LinkError, MsgFamily, Prologue, SchemaFingerprint, SessionRole};

/// Replay ring 256 B / 6 entries; receive ring 128 B / 3 entries.
const TX_BYTES: usize = 256;
const TX_ENTRIES: usize = 6;
const RX_BYTES: usize = 128;
const RX_ENTRIES: usize = 3;
type Store = SessionStorage<TX_BYTES, TX_ENTRIES, RX_BYTES, RX_ENTRIES>;

/// The configuration of every session in the vectors.
const CFG: StableConfig = StableConfig {
    max_message: 40,
    ack_every: 4,
    ack_delay_ms: 10,
    keepalive_ms: 100,
    timeout_ms: 400,
    retry_delay_ms: 5,
    linger_ms: 1000,
    connect_timeout_ms: 10_000,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

fn config_json(c: &StableConfig) -> Value {
    json!({
        "max_message": c.max_message,
        "ack_every": c.ack_every,
        "ack_delay_ms": c.ack_delay_ms,
        "keepalive_ms": c.keepalive_ms,
        "timeout_ms": c.timeout_ms,
        "retry_delay_ms": c.retry_delay_ms,
        "linger_ms": c.linger_ms,
        "connect_timeout_ms": c.connect_timeout_ms,
    })
}

fn role_name(role: SessionRole) -> &'static str {
    match role {
        SessionRole::Initiator => "initiator",
        SessionRole::Acceptor => "acceptor",
    }
}

fn role_of(name: &str) -> SessionRole {
    match name {
        "initiator" => SessionRole::Initiator,
        "acceptor" => SessionRole::Acceptor,
        other => panic!("unknown role {other}"),
    }
}

fn reason_name(r: RejectReason) -> &'static str {
    match r {
        RejectReason::SessionUnknown => "SessionUnknown",
        RejectReason::TableFull => "TableFull",
        RejectReason::Busy => "Busy",
    }
}

fn prologue_bytes(p: &Prologue) -> Vec<u8> {
    let mut b = [0u8; 32];
    let n = p.encode(&mut b).unwrap();
    b[..n].to_vec()
}

fn frame_bytes(f: &WireFrame<'_>) -> Vec<u8> {
    let mut b = vec![0u8; f.encoded_len()];
    f.encode(&mut b).unwrap();
    b
}

// ---- the cores --------------------------------------------------------

/// The acceptor's admission (the `StableAcceptor`'s sans-I/O part): it
/// reads a link's prologue and hello with [`HelloReader`], answers
/// prologues with its own, routes a key to the sessions it knows and
/// admits a new session against its table and queue.
struct Admission {
    local: Prologue,
    reader: HelloReader,
    /// Sessions in the table, new sessions queued, and the room for each.
    table_len: usize,
    queued: usize,
    sessions: usize,
    queue: usize,
    /// The keys the table's sessions know.
    known: Vec<[u8; 16]>,
}

enum Core {
    Session(Box<Store>),
    Admission(Admission),
}

/// A side's description in a vector file: what it is and how it starts.
fn make_core(desc: &Value) -> Core {
    let fp = SchemaFingerprint(unhex(desc["fingerprint"].as_str().unwrap()).try_into().unwrap());
    match desc["core"].as_str().unwrap() {
        "session" => {
            let role = role_of(desc["role"].as_str().unwrap());
            Core::Session(Box::new(Store::new(role, CFG, fp)))
        }
        "admission" => {
            let local = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, fp);
            let n = |k: &str| desc["table"][k].as_u64().unwrap() as usize;
            let known = desc["table"]["known_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| unhex(k.as_str().unwrap()).try_into().unwrap())
                .collect();
            Core::Admission(Admission {
                local,
                reader: HelloReader::new(local),
                table_len: n("table_len"),
                queued: n("queued"),
                sessions: n("sessions"),
                queue: n("queue"),
                known,
            })
        }
        other => panic!("unknown core {other}"),
    }
}

/// Applies one step's inputs (`op` and its fields) to `core` at `t` and
/// returns what the vector expects: the payloads emitted, and the core's
/// state after the step.
fn apply(core: &mut Core, t: u64, step: &Value) -> Value {
    match core {
        Core::Session(store) => apply_session(store, t, step),
        Core::Admission(a) => apply_admission(a, step),
    }
}

fn apply_session(store: &mut Store, t: u64, step: &Value) -> Value {
    let mut expect = Map::new();
    let op = step["op"].as_str().unwrap();
    {
        let (mut session, rx_bytes) = store.parts();
        match op {
            "attach" => {
                let key = step["key"].as_str().map(|k| unhex(k).try_into().unwrap());
                session.attach(t, key);
            }
            "receive" => {
                let payload = unhex(step["payload"].as_str().unwrap());
                session.on_receive(t, &payload, |at, msg| rx_bytes[at..at + msg.len()].copy_from_slice(msg));
            }
            "tick" => session.on_tick(t),
            "send" => {
                let msg = unhex(step["message"].as_str().unwrap());
                let accepted = session.try_reserve() == Ok(true);
                if accepted {
                    session
                        .push_message(|buf| {
                            buf[..msg.len()].copy_from_slice(&msg);
                            Ok(msg.len())
                        })
                        .unwrap();
                    session.end_reserve();
                }
                expect.insert("accepted".into(), json!(accepted));
            }
            "close" => session.close_tx(),
            "read" => {
                let mut got = Vec::new();
                loop {
                    let (mut session, rx_bytes) = store.parts();
                    let Some(r) = session.pop_received() else { break };
                    got.push(json!(hex(&rx_bytes[r.start..r.start + r.len])));
                    session.release(r.token);
                }
                expect.insert("messages".into(), Value::Array(got));
            }
            "link_failed" => session.link_failed(LinkError::Closed),
            other => panic!("unknown op {other}"),
        }
    }
    let mut emit = Vec::new();
    loop {
        let (mut session, _) = store.parts();
        let sent = session.transmit(t, |out| {
            let mut buf = vec![0u8; out.len()];
            out.encode(&mut buf).map(|()| emit.push(json!(hex(&buf))))
        });
        match sent {
            None => break,
            Some(r) => r.unwrap(),
        }
    }
    expect.insert("emit".into(), Value::Array(emit));
    let (session, _) = store.parts();
    let deadline = session.next_deadline();
    expect.insert("deadline".into(), if deadline == u64::MAX { Value::Null } else { json!(deadline) });
    let state = &mut store.state;
    expect.insert("detach".into(), state.take_detach().map_or(Value::Null, |d| json!(format!("{d:?}"))));
    expect.insert("ended".into(), state.ended().map_or(Value::Null, |e| json!(format!("{e:?}"))));
    expect.insert("complete".into(), json!(state.is_complete()));
    Value::Object(expect)
}

fn apply_admission(a: &mut Admission, step: &Value) -> Value {
    assert_eq!(step["op"], "receive", "an admission core only receives");
    let payload = unhex(step["payload"].as_str().unwrap());
    let mut emit = Vec::new();
    let mut decision = Value::Null;
    let result = match a.reader.on_payload(&payload) {
        HelloStep::Presented => {
            emit.push(json!(hex(&prologue_bytes(&a.local))));
            "Presented".to_string()
        }
        HelloStep::Refused(e) => {
            emit.push(json!(hex(&prologue_bytes(&a.local))));
            format!("Refused({e:?})")
        }
        HelloStep::Garbage(e) => format!("Garbage({e:?})"),
        HelloStep::Skip => "Skip".to_string(),
        HelloStep::Hello(hello) => {
            let reject = match hello.key {
                Some(key) if a.known.contains(&key) => {
                    decision = json!("Resume");
                    None
                }
                Some(_) => {
                    decision = json!("Unknown");
                    Some(RejectReason::SessionUnknown)
                }
                None => match admit(a.table_len, a.queued, a.sessions, a.queue, || None::<usize>) {
                    AdmitDecision::Reject(r) => {
                        decision = json!(format!("Reject({})", reason_name(r)));
                        Some(r)
                    }
                    other => {
                        decision = json!(format!("{other:?}"));
                        None
                    }
                },
            };
            if let Some(r) = reject {
                emit.push(json!(hex(&frame_bytes(&WireFrame::Reject(r)))));
            }
            "Hello".to_string()
        }
        _ => "Other".to_string(),
    };
    json!({ "step": result, "decision": decision, "emit": emit })
}

// ---- generating -------------------------------------------------------

/// Drives named cores through a script, recording every step, and moves
/// the payloads each emits to its connected peer.
struct Gen {
    name: String,
    description: String,
    message_codec: &'static str,
    seed: u64,
    rng: ChaCha20Rng,
    sides: BTreeMap<String, Value>,
    order: Vec<String>,
    cores: BTreeMap<String, Core>,
    /// Payloads in flight to each side.
    inbox: BTreeMap<String, Vec<Vec<u8>>>,
    /// Who receives what each side emits.
    peer: BTreeMap<String, String>,
    steps: Vec<Value>,
}

impl Gen {
    fn new(name: &str, description: &str, seed: u64) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            message_codec: "opaque",
            seed,
            rng: ChaCha20Rng::seed_from_u64(seed),
            sides: BTreeMap::new(),
            order: Vec::new(),
            cores: BTreeMap::new(),
            inbox: BTreeMap::new(),
            peer: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    fn session(&mut self, name: &str, role: SessionRole, fp: SchemaFingerprint) {
        self.add(name, json!({ "core": "session", "role": role_name(role), "fingerprint": hex(&fp.0) }));
    }

    fn admission(&mut self, name: &str, fp: SchemaFingerprint, table: Value) {
        self.add(name, json!({ "core": "admission", "role": "acceptor", "fingerprint": hex(&fp.0), "table": table }));
    }

    fn add(&mut self, name: &str, desc: Value) {
        self.cores.insert(name.into(), make_core(&desc));
        self.sides.insert(name.into(), desc);
        self.order.push(name.into());
        self.inbox.insert(name.into(), Vec::new());
    }

    fn connect(&mut self, a: &str, b: &str) {
        self.peer.insert(a.into(), b.into());
        self.peer.insert(b.into(), a.into());
    }

    /// Cuts the link between `a` and `b`: what is in flight is lost.
    fn cut(&mut self, a: &str, b: &str) {
        self.peer.remove(a);
        self.peer.remove(b);
        self.inbox.get_mut(a).unwrap().clear();
        self.inbox.get_mut(b).unwrap().clear();
    }

    fn step(&mut self, t: u64, side: &str, mut input: Value) -> Value {
        input["t"] = json!(t);
        input["side"] = json!(side);
        let expect = apply(self.cores.get_mut(side).unwrap(), t, &input);
        if let Some(peer) = self.peer.get(side).cloned() {
            for p in expect["emit"].as_array().unwrap() {
                self.inbox.get_mut(&peer).unwrap().push(unhex(p.as_str().unwrap()));
            }
        }
        input["expect"] = expect.clone();
        self.steps.push(input);
        expect
    }

    /// A new link for a session side (an acceptor draws its key from the RNG).
    fn attach(&mut self, t: u64, side: &str) {
        let key = if self.sides[side]["role"] == "acceptor" {
            let mut k = [0u8; 16];
            self.rng.fill_bytes(&mut k);
            json!(hex(&k))
        } else {
            Value::Null
        };
        self.step(t, side, json!({ "op": "attach", "key": key }));
    }

    fn receive(&mut self, t: u64, side: &str, payload: &[u8]) -> Value {
        self.step(t, side, json!({ "op": "receive", "payload": hex(payload) }))
    }

    fn send(&mut self, t: u64, side: &str, msg: &[u8]) {
        let e = self.step(t, side, json!({ "op": "send", "message": hex(msg) }));
        assert_eq!(e["accepted"], true, "{}: send refused", self.name);
    }

    fn simple(&mut self, t: u64, side: &str, op: &str) -> Value {
        self.step(t, side, json!({ "op": op }))
    }

    /// Delivers everything in flight, both ways, until nothing moves.
    fn pump(&mut self, t: u64) {
        loop {
            let mut moved = false;
            for side in self.order.clone() {
                let pending = std::mem::take(self.inbox.get_mut(&side).unwrap());
                for p in pending {
                    moved = true;
                    self.receive(t, &side, &p);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn finish(self) -> (String, String) {
        let sides: Map<String, Value> = self.sides.into_iter().collect();
        let v = json!({
            "name": self.name,
            "description": self.description,
            "format": 1,
            "config": config_json(&CFG),
            "buffers": { "tx_bytes": TX_BYTES, "tx_entries": TX_ENTRIES, "rx_bytes": RX_BYTES, "rx_entries": RX_ENTRIES },
            "rng": { "algorithm": "ChaCha20Rng (rand_chacha 0.9), seed_from_u64; 16 bytes per acceptor attach", "seed": self.seed },
            "message_codec": self.message_codec,
            "sides": sides,
            "steps": self.steps,
        });
        let mut text = serde_json::to_string_pretty(&v).unwrap();
        text.push('\n');
        (format!("{}.json", self.name), text)
    }
}

fn demo_fp() -> SchemaFingerprint {
    vox_demo_protocol::DemoFamily::FINGERPRINT
}

fn demo_msg(m: &vox_demo_protocol::DemoMsg<'_>) -> Vec<u8> {
    postcard::to_allocvec(m).unwrap()
}

fn rpc_msg(f: &Frame<'_>) -> Vec<u8> {
    postcard::to_allocvec(f).unwrap()
}

/// Initiator and acceptor on one link, through the handshake.
fn handshaken(g: &mut Gen, fp: SchemaFingerprint, t: u64) {
    g.session("initiator", SessionRole::Initiator, fp);
    g.session("acceptor", SessionRole::Acceptor, fp);
    g.connect("initiator", "acceptor");
    g.attach(t, "initiator");
    g.attach(t, "acceptor");
    g.pump(t);
}

fn new_session() -> (String, String) {
    use vox_demo_protocol::{Command, DemoMsg, Outcome};
    let mut g = Gen::new(
        "new-session",
        "A new session: prologues, the initiator's keyless hello, the acceptor's hello issuing a key; one \
         request and its reply, a delayed ack, then a keepalive each way.",
        1,
    );
    handshaken(&mut g, demo_fp(), 0);
    let req = demo_msg(&DemoMsg::Request { id: 1, command: Command::ReadSensor { sensor: 4 } });
    g.send(5, "initiator", &req);
    g.pump(5);
    g.simple(6, "acceptor", "read");
    let reply = demo_msg(&DemoMsg::Reply { id: 1, outcome: Outcome::Value(360) });
    g.send(7, "acceptor", &reply);
    g.pump(7);
    g.simple(8, "initiator", "read");
    // The initiator's delayed ack of the reply.
    g.simple(17, "initiator", "tick");
    g.pump(17);
    // Keepalives.
    g.simple(107, "acceptor", "tick");
    g.pump(107);
    g.simple(117, "initiator", "tick");
    g.pump(117);
    g.finish()
}

fn resume_replay() -> (String, String) {
    let mut g = Gen::new(
        "resume-replay",
        "A session whose link is cut with two data frames in flight: the initiator reattaches with the key it \
         holds, the acceptor issues a new one, the initiator replays both frames in order.",
        2,
    );
    handshaken(&mut g, demo_fp(), 0);
    let telemetry = |seq: u32| {
        demo_msg(&vox_demo_protocol::DemoMsg::Telemetry { seq, millivolts: 3300 + seq as u16, label: "vbat" })
    };
    g.send(10, "initiator", &telemetry(0));
    g.pump(10);
    g.send(11, "initiator", &telemetry(1));
    g.send(12, "initiator", &telemetry(2));
    // The link dies with both frames.
    g.cut("initiator", "acceptor");
    g.simple(13, "initiator", "link_failed");
    g.simple(13, "acceptor", "link_failed");
    g.simple(14, "acceptor", "read");
    // A new link.
    g.connect("initiator", "acceptor");
    g.attach(50, "initiator");
    g.attach(50, "acceptor");
    g.pump(50);
    g.simple(51, "acceptor", "read");
    g.simple(60, "acceptor", "tick");
    g.pump(60);
    g.finish()
}

fn session_unknown() -> (String, String) {
    let mut g = Gen::new(
        "refusal-session-unknown",
        "The acceptor restarted: the initiator presents a key the new acceptor core does not know; it answers \
         Reject(SessionUnknown) and the initiator's session ends lost.",
        3,
    );
    handshaken(&mut g, demo_fp(), 0);
    g.cut("initiator", "acceptor");
    g.simple(20, "initiator", "link_failed");
    g.session("restarted", SessionRole::Acceptor, demo_fp());
    g.connect("initiator", "restarted");
    g.attach(30, "initiator");
    g.attach(30, "restarted");
    g.pump(30);
    g.finish()
}

fn prologue_refusals() -> Vec<(String, String)> {
    let fp = demo_fp();
    let good = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, fp);
    let mut out = Vec::new();
    // One acceptor core fed a crafted prologue: it answers with its own, then ends.
    let mut one = |name: &str, what: &str, payload: Vec<u8>| {
        let mut g = Gen::new(name, what, 4);
        g.session("acceptor", SessionRole::Acceptor, fp);
        g.attach(0, "acceptor");
        g.receive(1, "acceptor", &payload);
        out.push(g.finish());
    };
    let mut version = prologue_bytes(&good);
    version[4] = 3;
    one(
        "refusal-version",
        "An initiator prologue of version 3: the acceptor answers with its prologue and ends.",
        version,
    );
    one(
        "refusal-mode",
        "A bare initiator prologue to a stable acceptor: it answers with its prologue and ends.",
        prologue_bytes(&Prologue::new(ConduitMode::Bare, SessionRole::Initiator, fp)),
    );
    // Two initiators: each finds the other's role.
    let mut g = Gen::new("refusal-role", "Two initiators on one link: each refuses the other's role.", 5);
    g.session("initiator-a", SessionRole::Initiator, fp);
    g.session("initiator-b", SessionRole::Initiator, fp);
    g.connect("initiator-a", "initiator-b");
    g.attach(0, "initiator-a");
    g.attach(0, "initiator-b");
    g.pump(0);
    out.push(g.finish());
    // Two schemas.
    let mut g = Gen::new(
        "refusal-schema",
        "An initiator of the demo family and an acceptor of the rpc family: both refuse the other's fingerprint.",
        6,
    );
    g.session("initiator", SessionRole::Initiator, fp);
    g.session("acceptor", SessionRole::Acceptor, RpcFamily::FINGERPRINT);
    g.connect("initiator", "acceptor");
    g.attach(0, "initiator");
    g.attach(0, "acceptor");
    g.pump(0);
    out.push(g.finish());
    out
}

/// The admission core (a listener's table) refusing a new session; the
/// initiator core's reaction to each answer.
fn admission_refusals() -> Vec<(String, String)> {
    let fp = demo_fp();
    let mut out = Vec::new();
    for (name, reason, table) in [
        ("refusal-busy", "Busy", json!({ "table_len": 1, "queued": 2, "sessions": 4, "queue": 2, "known_keys": [] })),
        (
            "refusal-table-full",
            "TableFull",
            json!({ "table_len": 2, "queued": 0, "sessions": 2, "queue": 2, "known_keys": [] }),
        ),
    ] {
        let mut g = Gen::new(
            name,
            &format!(
                "A listener's admission core refuses a new session with Reject({reason}); the initiator core reacts \
                 (Busy: backs off and dials again; TableFull: the session ends)."
            ),
            7,
        );
        g.session("initiator", SessionRole::Initiator, fp);
        g.admission("listener", fp, table);
        g.connect("initiator", "listener");
        g.attach(0, "initiator");
        g.pump(0);
        if reason == "Busy" {
            // The backoff, then the next link to a listener that has room.
            g.simple(5, "initiator", "tick");
            g.cut("initiator", "listener");
            g.admission(
                "listener-later",
                fp,
                json!({ "table_len": 1, "queued": 0, "sessions": 4, "queue": 2, "known_keys": [] }),
            );
            g.connect("initiator", "listener-later");
            g.attach(5, "initiator");
            g.pump(5);
        }
        out.push(g.finish());
    }
    // A resume key the listener does not know, and one it knows.
    let mut g = Gen::new(
        "admission-keys",
        "A listener's admission core: a hello before any prologue is skipped, a garbage prologue drops the link \
         unanswered, a known key is routed to its session, an unknown one is refused SessionUnknown.",
        8,
    );
    g.admission(
        "listener",
        fp,
        json!({ "table_len": 1, "queued": 0, "sessions": 4, "queue": 2, "known_keys": [hex(&[0x42; 16])] }),
    );
    let hello = |key: Option<[u8; 16]>| {
        frame_bytes(&WireFrame::Hello(vox_conduit_stable::wire::Hello {
            key,
            next_expected: 0,
            window: vox_conduit_stable::wire::Window { msgs: 3, bytes: 128 },
        }))
    };
    g.receive(0, "listener", &hello(None));
    g.receive(1, "listener", &prologue_bytes(&Prologue::new(ConduitMode::Stable, SessionRole::Initiator, fp)));
    g.receive(2, "listener", &hello(Some([0x42; 16])));
    g.receive(3, "listener", &hello(Some([0x43; 16])));
    g.receive(4, "listener", &prologue_bytes(&Prologue::new(ConduitMode::Stable, SessionRole::Initiator, fp))[..6]);
    out.push(g.finish());
    out
}

fn close_done() -> (String, String) {
    let mut g = Gen::new(
        "close-done",
        "Both directions close after a message each: Close frames, acks, then Ack{done} each way; both sides \
         complete.",
        9,
    );
    handshaken(&mut g, demo_fp(), 0);
    g.send(10, "initiator", &[0x02, 0x07, 0x00, 0x00]);
    g.simple(10, "initiator", "close");
    g.pump(10);
    g.simple(11, "acceptor", "read");
    g.simple(12, "acceptor", "close");
    g.pump(12);
    g.simple(22, "initiator", "tick");
    g.simple(22, "acceptor", "tick");
    g.pump(22);
    g.finish()
}

fn rpc_call() -> (String, String) {
    let mut g = Gen::new(
        "rpc-call",
        "Rpc frames (PROTOCOL §12) as the messages of a stable session of RpcFamily: the greetings, one clock \
         sample, a call of endpoint 1 and its reply, and a refused call. The frames are encoded by vox-rpc's wire \
         types; vox-rpc has no sans-I/O core, so which frame its runner sends when is not part of this vector.",
        10,
    );
    g.message_codec = "rpc";
    handshaken(&mut g, RpcFamily::FINGERPRINT, 0);
    let keys_i: Vec<u8> = [0x05ba_8bd2u32, 0x1fee_3aec].iter().flat_map(|k| k.to_le_bytes()).collect();
    let hello = |endpoints: &[u8]| {
        let fingerprint = endpoints.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
        rpc_msg(&Frame::Hello(vox_rpc::Hello {
            version: vox_rpc::PROTOCOL_VERSION,
            max_in_flight: 4,
            fingerprint,
            endpoints: Body::Bytes(endpoints),
            topics: Body::Bytes(&[]),
        }))
    };
    g.send(1, "initiator", &hello(&[]));
    g.send(1, "acceptor", &hello(&keys_i));
    g.pump(1);
    g.simple(2, "initiator", "read");
    g.simple(2, "acceptor", "read");
    g.send(3, "initiator", &rpc_msg(&Frame::TimeQuery { t0: 3 }));
    g.pump(3);
    g.simple(4, "acceptor", "read");
    g.send(4, "acceptor", &rpc_msg(&Frame::TimeReply { t0: 3, t1: 1003, t2: 1004 }));
    g.pump(4);
    g.simple(5, "initiator", "read");
    let body = postcard::to_allocvec(&4u8).unwrap();
    let request = Frame::Request(Request { id: 0x10001, endpoint: 1, deadline: 1205, body: Body::Bytes(&body) });
    g.send(6, "initiator", &rpc_msg(&request));
    g.pump(6);
    g.simple(7, "acceptor", "read");
    let answer = postcard::to_allocvec(&360i32).unwrap();
    g.send(8, "acceptor", &rpc_msg(&Frame::Reply { id: 0x10001, body: Body::Bytes(&answer) }));
    g.pump(8);
    g.simple(9, "initiator", "read");
    let late = Frame::Request(Request { id: 0x10002, endpoint: 0, deadline: -1300, body: Body::Bytes(&[]) });
    g.send(10, "initiator", &rpc_msg(&late));
    g.pump(10);
    g.simple(11, "acceptor", "read");
    g.send(12, "acceptor", &rpc_msg(&Frame::Refused { id: 0x10002, why: Refusal::Expired }));
    g.pump(12);
    g.simple(13, "initiator", "read");
    g.simple(22, "initiator", "tick");
    g.simple(22, "acceptor", "tick");
    g.pump(22);
    g.finish()
}

fn rpc_topic() -> (String, String) {
    let mut g = Gen::new(
        "rpc-topic",
        "Topic frames (PROTOCOL §12.5) over a stable session of RpcFamily: the device's greeting lists one topic, \
         the host subscribes, the device publishes two samples, the host credits them. Encoded by vox-rpc's wire \
         types (no sans-I/O rpc core exists).",
        11,
    );
    g.message_codec = "rpc";
    handshaken(&mut g, RpcFamily::FINGERPRINT, 0);
    let topics = 0x0fd9_8140u32.to_le_bytes();
    // Neither side serves an endpoint: the greeting's fingerprint is
    // FNV-1a 32 over no bytes, its offset basis.
    let device_hello = rpc_msg(&Frame::Hello(vox_rpc::Hello {
        version: vox_rpc::PROTOCOL_VERSION,
        max_in_flight: 1,
        fingerprint: 0x811c_9dc5,
        endpoints: Body::Bytes(&[]),
        topics: Body::Bytes(&topics),
    }));
    let host_hello = rpc_msg(&Frame::Hello(vox_rpc::Hello {
        version: vox_rpc::PROTOCOL_VERSION,
        max_in_flight: 8,
        fingerprint: 0x811c_9dc5,
        endpoints: Body::Bytes(&[]),
        topics: Body::Bytes(&[]),
    }));
    g.send(1, "initiator", &device_hello);
    g.send(1, "acceptor", &host_hello);
    g.pump(1);
    g.simple(2, "initiator", "read");
    g.simple(2, "acceptor", "read");
    g.send(3, "acceptor", &rpc_msg(&Frame::Subscribe { topic: 0, window: 4 }));
    g.pump(3);
    g.simple(4, "initiator", "read");
    for seq in 0..2u32 {
        let sample = vox_demo_protocol::Sample { seq, millivolts: 3300, label: "vbat" };
        let body = postcard::to_allocvec(&sample).unwrap();
        g.send(5, "initiator", &rpc_msg(&Frame::Sample { topic: 0, seq, dup: false, body: Body::Bytes(&body) }));
    }
    g.pump(5);
    g.simple(6, "acceptor", "read");
    g.send(7, "acceptor", &rpc_msg(&Frame::Credit { topic: 0, next: 2 }));
    g.pump(7);
    g.simple(8, "initiator", "read");
    g.simple(17, "initiator", "tick");
    g.simple(17, "acceptor", "tick");
    g.pump(17);
    g.finish()
}

/// Every vector, generated from the scripts above.
// r[impl proto.vectors]
fn generate() -> Vec<(String, String)> {
    let mut all = vec![new_session(), resume_replay(), session_unknown(), close_done(), rpc_call(), rpc_topic()];
    all.extend(prologue_refusals());
    all.extend(admission_refusals());
    all
}

/// Replays one file: each step's inputs into fresh cores, every output
/// compared with the file. Also checks that the acceptors' keys are the
/// seeded RNG's draws.
fn replay(name: &str, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["format"], 1, "{name}");
    assert_eq!(v["config"], config_json(&CFG), "{name}: the sessions' config");
    assert_eq!(
        v["buffers"],
        json!({ "tx_bytes": TX_BYTES, "tx_entries": TX_ENTRIES, "rx_bytes": RX_BYTES, "rx_entries": RX_ENTRIES }),
        "{name}"
    );
    let mut rng = ChaCha20Rng::seed_from_u64(v["rng"]["seed"].as_u64().unwrap());
    let mut cores: BTreeMap<String, Core> =
        v["sides"].as_object().unwrap().iter().map(|(k, d)| (k.clone(), make_core(d))).collect();
    let mut last_t = 0;
    for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
        let t = step["t"].as_u64().unwrap();
        assert!(t >= last_t, "{name} step {i}: time goes back");
        last_t = t;
        let side = step["side"].as_str().unwrap();
        if step["op"] == "attach" && !step["key"].is_null() {
            let mut k = [0u8; 16];
            rng.fill_bytes(&mut k);
            assert_eq!(step["key"], json!(hex(&k)), "{name} step {i}: the key is not the RNG's next draw");
        }
        let got = apply(cores.get_mut(side).unwrap(), t, step);
        assert_eq!(got, step["expect"], "{name} step {i} ({side} {} at {t})", step["op"]);
    }
}

// r[verify proto.vectors]
#[test]
fn every_committed_vector_replays_byte_for_byte() {
    let dir = vectors_dir();
    if std::env::var_os("VOX_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in generate() {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "docs/vectors holds {} files", files.len());
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        replay(&path.file_name().unwrap().to_string_lossy(), &text);
    }
}

/// The scripts still produce exactly the committed files (a change in the
/// core shows here and in the replay; regenerate on purpose).
// r[verify proto.vectors]
#[test]
fn the_generator_reproduces_the_committed_files() {
    if std::env::var_os("VOX_REGENERATE").is_some() {
        return;
    }
    for (name, text) in generate() {
        let committed = std::fs::read_to_string(vectors_dir().join(&name)).unwrap_or_default();
        assert!(
            committed == text,
            "docs/vectors/{name} differs from the generator: run `VOX_REGENERATE=1 cargo test -p vox-tests \
             --test vectors` if the change is intended"
        );
    }
}
