//! The acceptor's side of the handshake before a session takes a link, as
//! sans-I/O logic: reading the initiator's prologue and hello
//! ([`HelloReader`]), routing a resume to its session by the key's tag
//! ([`route`]), and admitting a new session or refusing it ([`admit`],
//! [`Sweep`]). The async
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

/// The bytes of a resume key that name its session. An acceptor serving
/// many sessions issues keys whose first `KEY_TAG_LEN` bytes are the
/// session's tag (little-endian) and whose other 12 come from its CSPRNG:
/// a resuming hello then finds its session by one lookup, and a key that
/// no session issued costs one lookup too, however many sessions the
/// table holds. The initiator treats the key as 16 opaque bytes.
pub const KEY_TAG_LEN: usize = 4;

/// The session tag a resume key carries (its first [`KEY_TAG_LEN`] bytes).
pub fn key_tag(key: &ResumeKey) -> u32 {
    let [a, b, c, d, ..] = *key;
    u32::from_le_bytes([a, b, c, d])
}

/// Writes `tag` into the first [`KEY_TAG_LEN`] bytes of a freshly drawn
/// `key`; the rest stays random.
pub fn tag_key(key: &mut ResumeKey, tag: u32) {
    for (k, t) in key.iter_mut().zip(tag.to_le_bytes()) {
        *k = t;
    }
}

/// The session a resuming hello's `key` goes to: the one `session_of` finds
/// for the key's tag, if `knows` says it issued that key (its latest or
/// the one presented before). One lookup and at most one check, whatever
/// the table's size: a peer sending made-up keys costs the acceptor no
/// search.
// r[impl core.acceptor]
pub fn route<'t, T>(
    session_of: impl FnOnce(u32) -> Option<&'t T>,
    key: &ResumeKey,
    knows: impl FnOnce(&T, &ResumeKey) -> bool,
) -> Option<&'t T> {
    session_of(key_tag(key)).filter(|s| knows(s, key))
}

/// When the acceptor looks through its whole table: to drop ended
/// sessions (when the table looks full, or has doubled since the last
/// sweep, so the memory of ended sessions goes back) and, in a full
/// table, to find a place to evict. A sweep checks every session, so
/// sweeping on every admission would cost a burst of `n` newcomers
/// `n²/2` checks; this way `n` admissions cost at most about `2n` checks
/// outside a full table. A full table that had no place to give is not
/// searched again for [`Sweep::FULL_RECHECK_MS`]: newcomers in between
/// are told `TableFull` at once, so a flood of hellos against a full
/// table costs one search per interval, not one per hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// The table's length at which the next sweep is due.
    at: usize,
    /// When a search of the full table last found no place.
    full_at: Option<u64>,
}

impl Sweep {
    /// The smallest length that triggers a sweep by growth.
    const FLOOR: usize = 16;

    /// How long a full table that had no place to give is taken to be
    /// still full, in milliseconds (a session that ends meanwhile gives
    /// its place up to this much later).
    pub const FULL_RECHECK_MS: u64 = 100;

    /// No sweep due before the table holds 16 sessions.
    pub const fn new() -> Self {
        Self { at: Self::FLOOR, full_at: None }
    }

    /// A sweep is due at `now` (ms) before admitting into a table of `len`
    /// sessions with room for `sessions`.
    pub fn due(&self, len: usize, sessions: usize, now: u64) -> bool {
        (len >= sessions && self.may_search(now)) || len >= self.at
    }

    /// A sweep left `len` sessions: the next is due at twice as many.
    pub fn swept(&mut self, len: usize) {
        self.at = len.saturating_mul(2).max(Self::FLOOR);
    }

    /// The full table may be searched for a place at `now`.
    pub fn may_search(&self, now: u64) -> bool {
        self.full_at.is_none_or(|at| now.saturating_sub(at) >= Self::FULL_RECHECK_MS)
    }

    /// A search at `now` found no place in the full table.
    pub fn found_full(&mut self, now: u64) {
        self.full_at = Some(now);
    }
}

impl Default for Sweep {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do with a new session's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdmitDecision<K = usize> {
    /// Take it: the table has room.
    Admit,
    /// Take it in place of the session `oldest_evictable` named (the
    /// oldest evictable one), which ends with `SessionLost`.
    AdmitEvicting(K),
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
pub fn admit<K>(
    table_len: usize,
    queued: usize,
    sessions: usize,
    queue: usize,
    oldest_evictable: impl FnOnce() -> Option<K>,
) -> AdmitDecision<K> {
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

    /// A key as the acceptor issues it: `tag`, then random bytes.
    fn issued(tag: u32, random: u8) -> ResumeKey {
        let mut key = [random; 16];
        tag_key(&mut key, tag);
        key
    }

    // r[verify core.acceptor]
    #[test]
    fn a_resume_is_routed_by_its_tag_with_one_check_whatever_the_table() {
        // 10,000 sessions, each knowing the key it issued.
        let table: std::collections::BTreeMap<u32, ResumeKey> = (0..10_000).map(|t| (t, issued(t, t as u8))).collect();
        let checks = core::cell::Cell::new(0);
        let knows = |s: &ResumeKey, k: &ResumeKey| {
            checks.set(checks.get() + 1);
            s == k
        };
        let key = issued(7_777, 7_777u32 as u8);
        assert_eq!(key_tag(&key), 7_777);
        assert_eq!(route(|t| table.get(&t), &key, knows), Some(&key));
        assert_eq!(checks.get(), 1);
        // A made-up key: a tag no session has costs no check; a session's
        // tag with other random bytes costs one, and is unknown.
        assert_eq!(route(|t| table.get(&t), &issued(20_000, 1), knows), None, "Reject(SessionUnknown)");
        assert_eq!(route(|t| table.get(&t), &issued(5, 99), knows), None);
        assert_eq!(checks.get(), 2, "one check per hello, not a search of the table");
    }

    // r[verify core.burst]
    #[test]
    fn sweeps_of_ended_sessions_cost_linear_time_over_a_burst() {
        // 10,000 newcomers into a table of 10,000, none ending: every sweep
        // checks the whole table.
        let (mut sweep, mut checks, sessions) = (Sweep::new(), 0usize, 10_000);
        for len in 0..sessions {
            if sweep.due(len, sessions, 0) {
                checks += len;
                sweep.swept(len);
            }
        }
        assert!(checks <= 2 * sessions, "{checks} checks for {sessions} admissions");
        // A full table sweeps before an admission (a newcomer needs the
        // room of an ended session).
        assert!(sweep.due(sessions, sessions, 0));
        // Half the table ended: the sweep frees them and the next is due
        // at twice what is left.
        sweep.swept(sessions / 2);
        assert!(!sweep.due(sessions / 2 + 1, sessions, 0));
        assert!(sweep.due(sessions, sessions, 0));
        assert!(Sweep::default().due(16, 1_000, 0) && !Sweep::default().due(15, 1_000, 0));
    }

    // r[verify core.acceptor]
    #[test]
    fn a_full_table_without_a_place_is_searched_once_per_interval() {
        let (mut sweep, sessions) = (Sweep::new(), 10_000);
        sweep.swept(sessions);
        assert!(sweep.may_search(1_000) && sweep.due(sessions, sessions, 1_000));
        sweep.found_full(1_000);
        // A flood of hellos in the next 100 ms: no search, no sweep.
        let searches =
            (1_000..1_100).filter(|&now| sweep.may_search(now) || sweep.due(sessions, sessions, now)).count();
        assert_eq!(searches, 0);
        assert!(sweep.may_search(1_000 + Sweep::FULL_RECHECK_MS));
        assert!(sweep.due(sessions, sessions, 1_000 + Sweep::FULL_RECHECK_MS));
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
            None::<usize>
        });
        assert_eq!(decision, AdmitDecision::Reject(RejectReason::Busy));
        assert!(!asked.get(), "the table is not searched for a newcomer told Busy");
        assert_eq!(admit(0, 4, 8, 4, || None::<usize>), AdmitDecision::Reject(RejectReason::Busy));
    }
}
