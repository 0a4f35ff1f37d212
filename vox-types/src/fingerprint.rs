//! `SchemaFingerprint`: a 64-bit hash of a message family's postcard schema.
//!
//! Mechanism (DESIGN.md decision 2): derived at compile time from the
//! const schema of `postcard-schema` (`#[derive(Schema)]`), hashed with the
//! FNV-1a key function postcard-rpc uses. We chose it over a hand-stored
//! constant checked against facet's `Shape` because it cannot drift from the
//! type, costs no flash beyond 8 bytes, and exists on a no-alloc Cortex-M0
//! where facet does not build.

use core::fmt;
use postcard_schema::Schema;
use postcard_schema::key::Key;
use serde::{Deserialize, Serialize};

/// The path mixed into every fingerprint, so only the schema itself matters.
const FINGERPRINT_PATH: &str = "vox.msg";

/// A 64-bit fingerprint of a message type's schema (names, field order,
/// types), equal on every target for the same Rust type definition.
///
/// ```
/// use vox_types::SchemaFingerprint;
///
/// mod v1 {
///     #[derive(postcard_schema::Schema)]
///     pub struct Reading { pub id: u32 }
/// }
/// mod v2 {
///     #[derive(postcard_schema::Schema)]
///     pub struct Reading { pub id: u64 }
/// }
///
/// // A compile-time constant, also on a no-alloc MCU.
/// const V1: SchemaFingerprint = SchemaFingerprint::of::<v1::Reading>();
/// assert_eq!(V1, SchemaFingerprint::of::<v1::Reading>());
/// assert_ne!(V1, SchemaFingerprint::of::<v2::Reading>(), "a field's type changed");
/// assert_eq!(V1.as_u64().to_be_bytes(), V1.0);
/// assert_eq!(format!("{V1}"), format!("{:016x}", V1.as_u64()));
/// ```
// r[impl prologue.schema]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SchemaFingerprint(pub [u8; 8]);

impl SchemaFingerprint {
    /// Fingerprint of `T`'s postcard schema, computed at compile time.
    pub const fn of<T: Schema + ?Sized>() -> Self {
        Self(Key::for_path::<T>(FINGERPRINT_PATH).to_bytes())
    }

    /// The fingerprint as a number (big-endian reading of the bytes).
    pub const fn as_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

impl fmt::Debug for SchemaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaFingerprint({:016x})", self.as_u64())
    }
}

impl fmt::Display for SchemaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.as_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postcard_schema::Schema;

    #[derive(Schema)]
    #[allow(dead_code)]
    struct A<'a> {
        id: u32,
        name: &'a str,
    }
    #[derive(Schema)]
    #[allow(dead_code)]
    struct B<'a> {
        id: u64,
        name: &'a str,
    }

    // r[verify prologue.schema]
    #[test]
    fn fingerprint_differs_when_a_field_type_changes_and_is_const() {
        const FA: SchemaFingerprint = SchemaFingerprint::of::<A<'static>>();
        let fb = SchemaFingerprint::of::<B<'static>>();
        assert_ne!(FA, fb);
        assert_eq!(FA, SchemaFingerprint::of::<A<'_>>());
        assert_eq!(std::format!("{FA}").len(), 16);
    }
}
