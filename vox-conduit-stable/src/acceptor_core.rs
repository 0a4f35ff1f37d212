//! The acceptor's side of the handshake before a session takes a link, as
//! sans-I/O logic: reading the initiator's prologue and hello
//! ([`HelloReader`]), routing a resume to its session ([`route`]), and
//! admitting a new session or refusing it ([`admit`]). The async
//! `StableAcceptor` (feature `alloc`) only moves bytes between these and
//! its links.

use crate::wire::{Hello, RejectReason, ResumeKey, WireFrame};
use vox_types::{PROLOGUE_MAGIC, Prologue, PrologueError};

/// What to do with one payload of a pending handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HelloStep {
    /// A prologue the acceptor takes: answer it with ours and keep it
    /// (the session's driver reads it again); the handshake has presented
    /// a valid prologue.
    Presented,
    /// A prologue of another schema, mode, version or role: answer it
    /// with ours (the initiator then finds the same refusal), then drop
    /// the link.
    Refused(PrologueError),
    /// A payload that starts like a prologue but does not decode: drop
    /// the link without an answer.
    Garbage(PrologueError),
    /// The initiator's hello after its prologue: keep it; the handshake
    /// is read.
    Hello(Hello),
    /// Anything else (a stale frame of an earlier link, or a frame before
    /// any prologue): skip it.
    Skip,
}

/// Reads an initiator's prologue and hello, payload by payload.
///
/// ```
/// use vox_conduit_stable::acceptor_core::{HelloReader, HelloStep};
/// use vox_types::{ConduitMode, Prologue, SchemaFingerprint, SessionRole};
///
/// let fp = SchemaFingerprint::of::<u32>();
/// let mut reader = HelloReader::new(Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, fp));
/// let mut bytes = [0u8; 32];
/// let n = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, fp).encode(&mut bytes).unwrap();
/// assert_eq!(reader.on_payload(&bytes[..n]), HelloStep::Presented);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HelloReader {
    local: Prologue,
    presented: bool,
}

impl HelloReader {
    /// A reader for an acceptor whose prologue is `local`.
    pub const fn new(local: Prologue) -> Self {
        Self { local, presented: false }
    }

    /// Whether a valid prologue came (a hello is taken only after one).
    pub fn presented(&self) -> bool {
        self.presented
    }

    /// The next payload read from the link.
    // r[impl core.acceptor]
    // r[impl stable.refusal]
    pub fn on_payload(&mut self, bytes: &[u8]) -> HelloStep {
        if bytes.starts_with(&PROLOGUE_MAGIC) {
            // The same classification as the session core's: another
            // version, mode, schema or role, or a mode or role unknown
            // here, is a refusal (answered); anything else is garbage.
            return match Prologue::decode(bytes).and_then(|peer| self.local.check_peer(&peer)) {
                Ok(()) => {
                    self.presented = true;
                    HelloStep::Presented
                }
                Err(e) if e.is_refusal() => HelloStep::Refused(e),
                Err(e) => HelloStep::Garbage(e),
            };
        }
        match WireFrame::decode(bytes) {
            Ok(WireFrame::Hello(hello)) if self.presented => HelloStep::Hello(hello),
            _ => HelloStep::Skip,
        }
    }
}

/// The index of the session that knows `key` (by `knows`: its latest key
/// or the one presented before), if any.
pub fn route<T>(sessions: &[T], key: &ResumeKey, knows: impl Fn(&T, &ResumeKey) -> bool) -> Option<usize> {
    sessions.iter().position(|s| knows(s, key))
}

/// What to do with a new session's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdmitDecision {
    /// Take it: the table has room.
    Admit,
    /// Take it in place of the session at this index (the oldest
    /// evictable one), which ends with `SessionLost`.
    AdmitEvicting(usize),
    /// Refuse it on the wire: `Busy` (the queue of sessions waiting for
    /// `accept` is full; the initiator tries again) or `TableFull` (every
    /// session in the table is live).
    Reject(RejectReason),
}

/// Admission of a new session: `table_len` sessions in the table (those
/// that ended already gone), `queued` new sessions waiting for `accept`,
/// room for `sessions` and `queue`; `oldest_evictable` finds, only when
/// the table is full, the session whose place may go (ended, finished,
/// or without a link and silent for its timeout; the oldest such). The
/// queue first: a newcomer told `Busy` must not evict a resumable
/// session on its way.
// r[impl core.acceptor]
pub fn admit(
    table_len: usize,
    queued: usize,
    sessions: usize,
    queue: usize,
    oldest_evictable: impl FnOnce() -> Option<usize>,
) -> AdmitDecision {
    if queued >= queue {
        return AdmitDecision::Reject(RejectReason::Busy);
    }
    if table_len < sessions {
        return AdmitDecision::Admit;
    }
    match oldest_evictable() {
        Some(i) => AdmitDecision::AdmitEvicting(i),
        None => AdmitDecision::Reject(RejectReason::TableFull),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Window;
    use vox_types::{ConduitMode, SchemaFingerprint, SessionRole};

    const FP: SchemaFingerprint = SchemaFingerprint([1, 2, 3, 4, 5, 6, 7, 8]);

    fn reader() -> HelloReader {
        HelloReader::new(Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, FP))
    }

    fn prologue(mode: ConduitMode, role: SessionRole, fp: SchemaFingerprint) -> std::vec::Vec<u8> {
        let mut b = [0u8; 32];
        let n = Prologue::new(mode, role, fp).encode(&mut b).unwrap();
        b[..n].to_vec()
    }

    fn hello(key: Option<ResumeKey>) -> std::vec::Vec<u8> {
        let frame = WireFrame::Hello(Hello { key, next_expected: 0, window: Window { msgs: 4, bytes: 512 } });
        let mut b = std::vec![0u8; frame.encoded_len()];
        frame.encode(&mut b).unwrap();
        b
    }

    // r[verify core.acceptor]
    #[test]
    fn a_hello_counts_only_after_a_valid_prologue_and_stale_frames_are_skipped() {
        let mut r = reader();
        assert_eq!(r.on_payload(&hello(None)), HelloStep::Skip, "a hello before any prologue is stale");
        assert_eq!(r.on_payload(&[0xff, 0x00]), HelloStep::Skip, "garbage that is no prologue is skipped");
        assert!(!r.presented());
        assert_eq!(r.on_payload(&prologue(ConduitMode::Stable, SessionRole::Initiator, FP)), HelloStep::Presented);
        assert!(r.presented());
        // A fresh session, then a resume.
        let fresh = r.on_payload(&hello(None));
        assert!(matches!(fresh, HelloStep::Hello(Hello { key: None, .. })));
        let resume = r.on_payload(&hello(Some([9; 16])));
        assert!(matches!(resume, HelloStep::Hello(Hello { key: Some(k), .. }) if k == [9; 16]));
    }

    // r[verify core.acceptor]
    #[test]
    fn every_refusal_is_answered_and_garbage_is_not() {
        for (mode, role, fp, why) in [
            (ConduitMode::Stable, SessionRole::Initiator, SchemaFingerprint([9; 8]), "schema"),
            (ConduitMode::Bare, SessionRole::Initiator, FP, "mode"),
            (ConduitMode::Stable, SessionRole::Acceptor, FP, "role"),
        ] {
            let step = reader().on_payload(&prologue(mode, role, fp));
            assert!(matches!(step, HelloStep::Refused(_)), "{why}: {step:?}");
        }
        let mut other_version = prologue(ConduitMode::Stable, SessionRole::Initiator, FP);
        other_version[4] = 9;
        assert!(matches!(
            reader().on_payload(&other_version),
            HelloStep::Refused(PrologueError::UnsupportedVersion { .. })
        ));
        let truncated = &prologue(ConduitMode::Stable, SessionRole::Initiator, FP)[..6];
        assert!(matches!(reader().on_payload(truncated), HelloStep::Garbage(_)));
    }

    #[test]
    fn a_resume_is_routed_to_the_session_that_knows_its_key() {
        let table = [[1u8; 16], [2; 16], [3; 16]];
        assert_eq!(route(&table, &[2; 16], |s, k| s == k), Some(1));
        assert_eq!(route(&table, &[7; 16], |s, k| s == k), None, "unknown: Reject(SessionUnknown)");
    }

    // r[verify core.acceptor]
    #[test]
    fn admission_takes_room_then_the_oldest_evictable_place_and_refuses_typed() {
        // (accept order, evictable) of each session in the table.
        fn oldest(table: &[(u64, bool)]) -> impl FnOnce() -> Option<usize> + '_ {
            move || table.iter().enumerate().filter(|(_, s)| s.1).min_by_key(|(_, s)| s.0).map(|(i, _)| i)
        }
        let t = [(1, false)];
        assert_eq!(admit(t.len(), 0, 2, 2, oldest(&t)), AdmitDecision::Admit);
        let t = [(1, false), (5, true), (3, true)];
        assert_eq!(admit(t.len(), 0, 3, 3, oldest(&t)), AdmitDecision::AdmitEvicting(2), "the oldest stale");
        let t = [(1, false), (2, false)];
        assert_eq!(admit(t.len(), 0, 2, 2, oldest(&t)), AdmitDecision::Reject(RejectReason::TableFull));
        // The queue first: no eviction for a newcomer told Busy.
        let t = [(1, false), (2, true)];
        let asked = core::cell::Cell::new(false);
        let decision = admit(t.len(), 2, 2, 2, || {
            asked.set(true);
            None
        });
        assert_eq!(decision, AdmitDecision::Reject(RejectReason::Busy));
        assert!(!asked.get(), "the table is not searched for a newcomer told Busy");
        assert_eq!(admit(0, 4, 8, 4, || None), AdmitDecision::Reject(RejectReason::Busy));
    }
}
