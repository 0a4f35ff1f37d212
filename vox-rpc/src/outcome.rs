//! `CallError`: why a call failed, and whether its request may have run.

use core::fmt;
use vox_types::ErrorKind;

use crate::Refusal;

/// Why a call failed. `H` is the endpoint's handler error (owned), or
/// [`NoError`](crate::NoError) where the handler's outcome is handed to a
/// closure ([`Client::call_with`](crate::Client::call_with)).
///
/// Every variant says whether the request may have run
/// ([`may_have_run`](Self::may_have_run)): it surely did not exactly when
/// it was never committed to the conduit, or the server refused it with a
/// refusal that proves it (`Expired`, `Busy`, `Unknown`, `Undecodable`).
/// The layer never sends a request again by itself: retrying is the
/// caller's choice, and [`is_retryable`](Self::is_retryable) says when it
/// is safe and may help.
// r[impl rpc.outcome]
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CallError<H = crate::NoError> {
    /// The deadline passed before an answer came. `committed`: the request
    /// was handed to the conduit (it may have run, or may still run up to
    /// ε after the deadline; see [`Client::epsilon`](crate::Client::epsilon)).
    Timeout {
        /// The request was committed to the conduit.
        committed: bool,
    },
    /// The server found the deadline passed before it could start the
    /// request. Did not run.
    Expired,
    /// The endpoint was running as many requests as it may, or the server
    /// had no room to hold the request; or, on this side, every entry of
    /// the table was taken and `WAIT` callers waited already (nothing was
    /// sent). Did not run.
    Busy,
    /// The peer does not serve this endpoint (or serves another version of
    /// it: another name or other types). Did not run.
    Unknown,
    /// The server could not decode the request as the endpoint's type. Did
    /// not run.
    Undecodable,
    /// The handler ran and returned its own error.
    Handler(H),
    /// The request does not encode, or is larger than the table's entry
    /// buffer: nothing was sent.
    TooLarge,
    /// The response did not decode, or did not fit the entry buffer: the
    /// request ran.
    BadResponse,
    /// The link under a bare conduit failed. `committed`: the request was
    /// handed to the conduit before.
    LinkLost {
        /// The request was committed to the conduit.
        committed: bool,
    },
    /// The session ended (the peer restarted, or no link reaches it).
    /// `committed`: the request was handed to the conduit before.
    SessionLost {
        /// The request was committed to the conduit.
        committed: bool,
    },
}

impl<H> CallError<H> {
    /// Whether the request may have run (or may still run). `false` is a
    /// guarantee: it did not and will not.
    pub fn may_have_run(&self) -> bool {
        match self {
            Self::Timeout { committed } | Self::LinkLost { committed } | Self::SessionLost { committed } => *committed,
            Self::Handler(_) | Self::BadResponse => true,
            Self::Expired | Self::Busy | Self::Unknown | Self::Undecodable | Self::TooLarge => false,
        }
    }

    /// Whether sending the same request again is safe and may succeed:
    /// it surely did not run, and the reason may pass (a deadline, a busy
    /// endpoint, a lost link or session). `Unknown`, `Undecodable` and
    /// `TooLarge` fail the same way again.
    pub fn is_retryable(&self) -> bool {
        !self.may_have_run() && !matches!(self, Self::Unknown | Self::Undecodable | Self::TooLarge)
    }

    /// The same error with the handler's error mapped.
    pub fn map_handler<G>(self, f: impl FnOnce(H) -> G) -> CallError<G> {
        match self {
            Self::Timeout { committed } => CallError::Timeout { committed },
            Self::Expired => CallError::Expired,
            Self::Busy => CallError::Busy,
            Self::Unknown => CallError::Unknown,
            Self::Undecodable => CallError::Undecodable,
            Self::Handler(h) => CallError::Handler(f(h)),
            Self::TooLarge => CallError::TooLarge,
            Self::BadResponse => CallError::BadResponse,
            Self::LinkLost { committed } => CallError::LinkLost { committed },
            Self::SessionLost { committed } => CallError::SessionLost { committed },
        }
    }

    pub(crate) fn refused(why: Refusal) -> Self {
        match why {
            Refusal::Expired => Self::Expired,
            Refusal::Busy | Refusal::Cancelled => Self::Busy,
            Refusal::Unknown => Self::Unknown,
            Refusal::Undecodable => Self::Undecodable,
        }
    }

    /// The failure of a call whose session ended with an error of `kind`.
    pub(crate) fn lost(kind: ErrorKind, committed: bool) -> Self {
        match kind {
            ErrorKind::LinkLost => Self::LinkLost { committed },
            _ => Self::SessionLost { committed },
        }
    }
}

impl<H: fmt::Display> fmt::Display for CallError<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { committed: true } => {
                f.write_str("no answer before the deadline (the request may have run)")
            }
            Self::Timeout { committed: false } => {
                f.write_str("no answer before the deadline (the request was never sent)")
            }
            Self::Expired => f.write_str("the server found the deadline passed and did not run the request"),
            Self::Busy => f.write_str("the server was busy and did not run the request"),
            Self::Unknown => f.write_str("the peer does not serve this endpoint (or another version of it)"),
            Self::Undecodable => f.write_str("the server could not decode the request and did not run it"),
            Self::Handler(h) => write!(f, "the handler failed: {h}"),
            Self::TooLarge => f.write_str("the request does not encode or does not fit; nothing was sent"),
            Self::BadResponse => f.write_str("the request ran but its response does not decode or fit"),
            Self::LinkLost { committed } => {
                write!(f, "the link was lost ({})", if *committed { "the request may have run" } else { "never sent" })
            }
            Self::SessionLost { committed } => {
                write!(
                    f,
                    "the session was lost ({})",
                    if *committed { "the request may have run" } else { "never sent" }
                )
            }
        }
    }
}

impl<H: fmt::Debug + fmt::Display> core::error::Error for CallError<H> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surely_not_run_exactly_for_uncommitted_and_proving_refusals() {
        let not_run: [CallError; 7] = [
            CallError::Timeout { committed: false },
            CallError::Expired,
            CallError::Busy,
            CallError::Unknown,
            CallError::Undecodable,
            CallError::TooLarge,
            CallError::SessionLost { committed: false },
        ];
        for e in &not_run {
            assert!(!e.may_have_run(), "{e}");
        }
        let may: [CallError<u8>; 5] = [
            CallError::Timeout { committed: true },
            CallError::Handler(1),
            CallError::BadResponse,
            CallError::LinkLost { committed: true },
            CallError::SessionLost { committed: true },
        ];
        for e in &may {
            assert!(e.may_have_run(), "{e}");
            assert!(!e.is_retryable(), "{e}");
        }
        assert!(CallError::<u8>::Busy.is_retryable());
        assert!(CallError::<u8>::Timeout { committed: false }.is_retryable());
        assert!(!CallError::<u8>::Unknown.is_retryable());
    }
}
