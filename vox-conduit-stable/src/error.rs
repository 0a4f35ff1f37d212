//! Errors of the stable conduit, one type per operation: what ends a
//! session ([`SessionError`], also the driver's result), what `reserve`
//! and `send` can return ([`SendError`]) and what `recv` can return
//! ([`RecvError`]).

use crate::ConfigError;
use crate::session::Violation;
use crate::wire::RejectReason;
use core::fmt;
use vox_types::{ConduitError, ErrorKind, HandshakeError};

/// Why a session ended. The driver returns it; every later `reserve`,
/// `send` and `recv` reports it. Link failures never appear here: the
/// conduit reattaches and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
// Tagged by a whole word: the error (stored in the session state, answered
// by the driver) is copied in words, not byte by byte around a 2-byte tag.
#[repr(u32)]
pub enum SessionError {
    /// The peer does not know our resume key (it restarted, or expired the
    /// session), or the peer started a new session. Messages not yet
    /// acknowledged may be lost; start a new conduit. Never raised for a
    /// transient link loss.
    // r[impl stable.session-lost]
    SessionLost,
    /// The peer refused the conduit for good (other schema, mode, role or
    /// protocol version).
    Refused(HandshakeError),
    /// The acceptor refused a new session on the wire (its table is full
    /// of live sessions, or its application takes no new ones).
    Rejected(RejectReason),
    /// The link source is exhausted: no more links will come (it closed,
    /// or gave up: [`LinkError::GaveUp`](vox_types::LinkError::GaveUp)).
    SourceClosed,
    /// The configuration cannot work with the link attached (a data frame
    /// would not fit its payload); nothing was sent on it.
    Config(ConfigError),
    /// The peer broke the protocol in a way no new link can repair.
    Violation(Violation),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionLost => f.write_str("session lost: the peer no longer knows this session"),
            Self::Refused(e) => write!(f, "stable conduit refused: {e}"),
            Self::Rejected(r) => write!(f, "the acceptor refused a new session: {r:?}"),
            Self::SourceClosed => f.write_str("the link source is closed"),
            Self::Config(e) => write!(f, "configuration refused: {e}"),
            Self::Violation(v) => write!(f, "the peer broke the stable protocol: {v:?}"),
        }
    }
}

impl core::error::Error for SessionError {}

impl ConduitError for SessionError {
    /// `SessionLost` for a lost session, an exhausted link source (no
    /// link will reach the peer again) or a protocol violation (the
    /// session ended with messages in flight), `Refused` for a refusal, a
    /// rejection or a configuration the link cannot carry. Never
    /// `LinkLost`: the conduit outlives links.
    // r[impl found.error-kind]
    fn kind(&self) -> ErrorKind {
        match self {
            Self::SessionLost | Self::SourceClosed | Self::Violation(_) => ErrorKind::SessionLost,
            Self::Refused(_) | Self::Rejected(_) | Self::Config(_) => ErrorKind::Refused,
        }
    }
}

/// Why `reserve` or `send` failed; nothing was sent.
///
/// A message that does not fit [`StableConfig::max_message`](crate::StableConfig::max_message)
/// is refused by `send`, and the conduit goes on:
///
/// ```
/// use vox_conduit_stable::{SendError, StableConfig};
/// use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit};
/// # use embassy_futures::join::join;
/// # use embassy_futures::select::{Either, select};
/// # use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// # use std::sync::Arc;
/// # use vox_conduit_stable::{StableConduit, StableStorage};
/// # use vox_link_embedded::sim::{SimClock, memory_link_source};
/// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
/// # struct Note<'a>(&'a str);
/// # vox_types::msg_family!(NoteFamily => Note<'a>);
/// # type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;
/// # type Notes = StableConduit<NoteFamily, Storage>;
/// # let config = StableConfig::DEFAULT;
/// # let (device, device_driver) = Notes::initiator(Arc::new(Storage::new()), config).unwrap();
/// # let (host, host_driver) = Notes::acceptor(Arc::new(Storage::new()), config).unwrap();
/// # let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 4, 256>([]);
/// # let rng: rand_chacha::ChaCha8Rng = rand_core::SeedableRng::seed_from_u64(7);
/// # let clock = SimClock::new();
///
/// let device_app = async {
///     let (tx, _rx) = device.split();
///     let long = "x".repeat(300);
///     match tx.reserve().await?.send(Note(&long)) {
///         Err(SendError::TooLarge { max }) => assert_eq!(max, StableConfig::DEFAULT.max_message),
///         other => panic!("unexpected: {other:?}"),
///     }
///     tx.reserve().await?.send(Note("short"))
/// };
/// let host_app = async {
///     let (_tx, mut rx) = host.split();
///     let msg = rx.recv().await.unwrap().unwrap();
///     assert_eq!(msg.get::<NoteFamily>().0, "short", "the long one was never sent");
/// };
/// # let drivers = join(device_driver.run(dialer, clock.clone()), host_driver.run(listener, rng, clock.clone()));
/// # let apps = join(device_app, host_app);
/// # let Either::First((sent, ())) = futures::executor::block_on(select(apps, drivers)) else {
/// #     panic!("a driver ended first");
/// # };
/// # sent?;
/// # Ok::<(), SendError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError {
    /// The session ended.
    Session(SessionError),
    /// This side closed its sending direction.
    Closed,
    /// The encoded message is larger than
    /// [`StableConfig::max_message`](crate::StableConfig::max_message).
    TooLarge {
        /// The maximum.
        max: usize,
    },
    /// The message could not be encoded.
    Encode {
        /// The family's name.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::Closed => f.write_str("the sending direction is closed"),
            Self::TooLarge { max } => write!(f, "the encoded message exceeds the maximum of {max} bytes"),
            Self::Encode { family, error } => write!(f, "could not encode a {family} message: {error}"),
        }
    }
}

impl core::error::Error for SendError {}

impl ConduitError for SendError {
    /// The session's kind, or `Closed`, `TooLarge`, `Other` (encoding).
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Session(e) => e.kind(),
            Self::Closed => ErrorKind::Closed,
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::Encode { .. } => ErrorKind::Other,
        }
    }
}

impl From<SessionError> for SendError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

/// Why `recv` failed.
///
/// A session whose link source closes before any link came ends; every
/// operation on its conduit then reports why:
///
/// ```
/// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
/// use futures::executor::block_on;
/// use std::sync::Arc;
/// use vox_conduit_stable::{RecvError, SendError, SessionError, StableConduit, StableConfig, StableStorage};
/// use vox_link_embedded::sim::{SimClock, memory_link_source};
/// use vox_types::{Conduit, ConduitError, ConduitRx, ConduitTx, ErrorKind};
/// # #[derive(serde::Serialize, serde::Deserialize, postcard_schema::Schema)]
/// # struct Ping(u32);
/// # vox_types::msg_family!(PingFamily => Ping);
///
/// type Storage = StableStorage<CriticalSectionRawMutex, 1024, 8, 1024, 8>;
/// let storage = Arc::new(Storage::new());
/// let (conduit, driver) = StableConduit::<PingFamily, Storage>::initiator(storage, StableConfig::DEFAULT)?;
/// let (dialer, listener) = memory_link_source::<CriticalSectionRawMutex, 2, 256>([]);
/// drop(dialer); // no link will ever come
/// assert_eq!(block_on(driver.run(listener, SimClock::new())), Err(SessionError::SourceClosed));
///
/// let (tx, mut rx) = conduit.split();
/// match block_on(rx.recv()) {
///     Err(RecvError::Session(e)) => assert_eq!(e, SessionError::SourceClosed),
///     Err(RecvError::Decode { family, .. }) => panic!("a bad {family} message; the conduit goes on"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// let Err(e) = block_on(tx.reserve()) else { panic!("nothing can be sent") };
/// assert_eq!(e.session(), Some(&SessionError::SourceClosed));
/// assert_eq!(e, SendError::Session(SessionError::SourceClosed));
/// // What a layer above does with it: start a new session.
/// assert_eq!(e.kind(), ErrorKind::SessionLost);
/// # Ok::<(), vox_conduit_stable::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RecvError {
    /// The session ended.
    Session(SessionError),
    /// A received message is not a valid message of the family; the
    /// conduit stays usable.
    Decode {
        /// The family's name.
        family: &'static str,
        /// What postcard reported.
        #[cfg_attr(feature = "defmt", defmt(Debug2Format))]
        error: postcard::Error,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(e) => e.fmt(f),
            Self::Decode { family, error } => write!(f, "received payload is not a valid {family} message: {error}"),
        }
    }
}

impl core::error::Error for RecvError {}

impl ConduitError for RecvError {
    /// The session's kind, or `Decode`.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Session(e) => e.kind(),
            Self::Decode { .. } => ErrorKind::Decode,
        }
    }
}

impl From<SessionError> for RecvError {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

impl SendError {
    /// The session's end, if that is why.
    pub fn session(&self) -> Option<&SessionError> {
        match self {
            Self::Session(e) => Some(e),
            _ => None,
        }
    }
}

impl RecvError {
    /// The session's end, if that is why.
    pub fn session(&self) -> Option<&SessionError> {
        match self {
            Self::Session(e) => Some(e),
            Self::Decode { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::FrameKind;
    use vox_types::PrologueError;

    // r[verify found.error-kind]
    #[test]
    fn every_error_has_the_kind_a_layer_above_needs() {
        let violation = Violation::AckAhead { frame: FrameKind::Data, ack: 9, sent: 2 };
        let refused = HandshakeError::Prologue(PrologueError::UnsupportedVersion { found: 9, supported: 1 });
        let encode = postcard::Error::SerdeSerCustom;
        let decode = postcard::Error::DeserializeUnexpectedEnd;
        let cases: [(&dyn ConduitError, ErrorKind); 12] = [
            (&SessionError::SessionLost, ErrorKind::SessionLost),
            (&SessionError::SourceClosed, ErrorKind::SessionLost),
            (&SessionError::Violation(violation), ErrorKind::SessionLost),
            (&SessionError::Refused(refused), ErrorKind::Refused),
            (&SessionError::Rejected(RejectReason::TableFull), ErrorKind::Refused),
            (&SessionError::Config(ConfigError::AckEveryZero), ErrorKind::Refused),
            (&SendError::Session(SessionError::SessionLost), ErrorKind::SessionLost),
            (&SendError::Closed, ErrorKind::Closed),
            (&SendError::TooLarge { max: 8 }, ErrorKind::TooLarge),
            (&SendError::Encode { family: "F", error: encode }, ErrorKind::Other),
            (&RecvError::Session(SessionError::SourceClosed), ErrorKind::SessionLost),
            (&RecvError::Decode { family: "F", error: decode }, ErrorKind::Decode),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }
}
