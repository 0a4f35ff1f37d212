//! The link prologue: first payload each way on a fresh link (`docs/PROTOCOL.md` §3).
//!
//! Wire layout (postcard): magic `[u8; 4]` = `b"VOXE"`, protocol version
//! (`u16` varint), mode (`u8`: 0 bare, 1 stable), role (`u8`: 0 initiator,
//! 1 acceptor), schema fingerprint (`[u8; 8]`). Magic and version are
//! decoded first, so a peer of another version gets
//! [`PrologueError::UnsupportedVersion`] whatever follows.

use crate::{PrologueError, SchemaFingerprint, SessionRole};

/// Four bytes that open every prologue.
pub const PROLOGUE_MAGIC: [u8; 4] = *b"VOXE";
/// The protocol version this crate speaks.
// r[impl proto.version]
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest encoded prologue, in bytes.
pub const PROLOGUE_MAX_LEN: usize = 4 + 3 + 1 + 1 + 8;

/// Which conduit a link carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConduitMode {
    /// `BareConduit`: link + postcard, dies with the link.
    Bare,
    /// `StableConduit`: seq/ack/replay across links.
    Stable,
}

impl ConduitMode {
    const fn to_wire(self) -> u8 {
        match self {
            Self::Bare => 0,
            Self::Stable => 1,
        }
    }
    const fn from_wire(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Bare),
            1 => Some(Self::Stable),
            _ => None,
        }
    }
}

const fn role_to_wire(r: SessionRole) -> u8 {
    match r {
        SessionRole::Initiator => 0,
        SessionRole::Acceptor => 1,
    }
}

const fn role_from_wire(b: u8) -> Option<SessionRole> {
    match b {
        0 => Some(SessionRole::Initiator),
        1 => Some(SessionRole::Acceptor),
        _ => None,
    }
}

/// What each side announces first on a fresh link.
///
/// ```
/// use vox_types::{ConduitMode, PROLOGUE_MAX_LEN, Prologue, PrologueError, SchemaFingerprint, SessionRole};
///
/// let fingerprint = SchemaFingerprint::of::<u32>();
/// let ours = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, fingerprint);
/// let mut buf = [0u8; PROLOGUE_MAX_LEN];
/// let n = ours.encode(&mut buf)?;
/// assert_eq!(&buf[..4], b"VOXE");
/// assert_eq!(Prologue::decode(&buf[..n])?, ours);
/// assert_eq!(Prologue::decode(&buf[..n - 1]), Err(PrologueError::Truncated));
///
/// // The peer must run the same mode and schema, in the other role.
/// let peer = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, fingerprint);
/// assert_eq!(ours.check_peer(&peer), Ok(()));
/// assert_eq!(ours.check_peer(&ours), Err(PrologueError::RoleConflict { role: SessionRole::Initiator }));
/// # Ok::<(), PrologueError>(())
/// ```
// r[impl prologue.first]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Prologue {
    /// Protocol version; [`PROTOCOL_VERSION`] for prologues we build.
    pub version: u16,
    /// Requested conduit mode.
    pub mode: ConduitMode,
    /// The sender's role.
    pub role: SessionRole,
    /// The sender's message-family schema fingerprint.
    pub fingerprint: SchemaFingerprint,
}

impl Prologue {
    /// A prologue of this protocol version.
    pub const fn new(mode: ConduitMode, role: SessionRole, fingerprint: SchemaFingerprint) -> Self {
        Self { version: PROTOCOL_VERSION, mode, role, fingerprint }
    }

    /// Encodes into `buf` (at least [`PROLOGUE_MAX_LEN`] bytes) and returns
    /// the encoded length. Written by hand rather than through serde (the
    /// bytes are postcard's, checked by a test): a Cortex-M saves the
    /// serde code.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, PrologueError> {
        // `u16` varint: 7 bits a byte, low first.
        let mut version = [0u8; 3];
        let mut v = self.version;
        let mut n = 0;
        for byte in version.iter_mut() {
            n += 1;
            if v < 0x80 {
                *byte = v as u8;
                break;
            }
            *byte = v as u8 | 0x80;
            v >>= 7;
        }
        let version = version.get(..n).unwrap_or(&[]);
        let len = PROLOGUE_MAGIC.len() + version.len() + 2 + self.fingerprint.0.len();
        let out = buf.get_mut(..len).ok_or(PrologueError::BufferTooSmall)?;
        let (magic, rest) = out.split_at_mut(PROLOGUE_MAGIC.len());
        magic.copy_from_slice(&PROLOGUE_MAGIC);
        let (ver, rest) = rest.split_at_mut(version.len());
        ver.copy_from_slice(version);
        let (mode_role, fingerprint) = rest.split_at_mut(2);
        mode_role.copy_from_slice(&[self.mode.to_wire(), role_to_wire(self.role)]);
        fingerprint.copy_from_slice(&self.fingerprint.0);
        Ok(len)
    }

    /// Decodes a prologue; any input yields a value or a typed error.
    // r[impl prologue.version]
    pub fn decode(bytes: &[u8]) -> Result<Self, PrologueError> {
        let (magic, mut rest) = bytes.split_first_chunk::<4>().ok_or(PrologueError::Truncated)?;
        if *magic != PROLOGUE_MAGIC {
            return Err(PrologueError::BadMagic { found: *magic });
        }
        // `u16` varint: at most 3 bytes, the last at most 0x03.
        let mut version = 0u16;
        let mut i = 0;
        loop {
            let (&b, after) = rest.split_first().ok_or(PrologueError::Truncated)?;
            rest = after;
            if i == 2 && b > 0x03 {
                return Err(PrologueError::Malformed);
            }
            version |= u16::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
            i += 1;
        }
        if version != PROTOCOL_VERSION {
            return Err(PrologueError::UnsupportedVersion { found: version, supported: PROTOCOL_VERSION });
        }
        let (&[mode, role], rest) = rest.split_first_chunk::<2>().ok_or(PrologueError::Truncated)?;
        let (&fingerprint, rest) = rest.split_first_chunk::<8>().ok_or(PrologueError::Truncated)?;
        if !rest.is_empty() {
            return Err(PrologueError::Malformed);
        }
        let mode = ConduitMode::from_wire(mode).ok_or(PrologueError::UnknownMode(mode))?;
        let role = role_from_wire(role).ok_or(PrologueError::UnknownRole(role))?;
        Ok(Self { version, mode, role, fingerprint: SchemaFingerprint(fingerprint) })
    }

    /// Checks a peer's prologue against ours: exact mode (no fallback),
    /// equal fingerprints, opposite roles.
    // r[impl prologue.mode]
    pub fn check_peer(&self, peer: &Prologue) -> Result<(), PrologueError> {
        if peer.mode != self.mode {
            return Err(PrologueError::ModeMismatch { local: self.mode, peer: peer.mode });
        }
        if peer.fingerprint != self.fingerprint {
            return Err(PrologueError::SchemaMismatch { local: self.fingerprint, peer: peer.fingerprint });
        }
        if peer.role == self.role {
            return Err(PrologueError::RoleConflict { role: self.role });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: SchemaFingerprint = SchemaFingerprint([1, 2, 3, 4, 5, 6, 7, 8]);

    fn encoded(p: &Prologue) -> ([u8; PROLOGUE_MAX_LEN], usize) {
        let mut buf = [0u8; PROLOGUE_MAX_LEN];
        let n = p.encode(&mut buf).unwrap();
        (buf, n)
    }

    // r[verify prologue.first]
    #[test]
    fn round_trips_every_mode_and_role() {
        for mode in [ConduitMode::Bare, ConduitMode::Stable] {
            for role in [SessionRole::Initiator, SessionRole::Acceptor] {
                let p = Prologue::new(mode, role, FP);
                let (buf, n) = encoded(&p);
                assert_eq!(&buf[..4], b"VOXE");
                assert_eq!(Prologue::decode(&buf[..n]), Ok(p));
            }
        }
    }

    // r[verify prologue.version]
    #[test]
    fn bad_input_gives_typed_errors() {
        let p = Prologue::new(ConduitMode::Bare, SessionRole::Initiator, FP);
        let (buf, n) = encoded(&p);
        // Every truncation is an error, and a typed one.
        for cut in 0..n {
            assert_eq!(Prologue::decode(&buf[..cut]), Err(PrologueError::Truncated), "cut at {cut}");
        }
        let mut bad = buf;
        bad[0] = b'X';
        assert_eq!(Prologue::decode(&bad[..n]), Err(PrologueError::BadMagic { found: *b"XOXE" }));
        // Older and newer peers alike.
        for version in [1, PROTOCOL_VERSION + 1] {
            let mut other = p;
            other.version = version;
            let (v, n) = encoded(&other);
            let refused = PrologueError::UnsupportedVersion { found: version, supported: PROTOCOL_VERSION };
            assert_eq!(Prologue::decode(&v[..n]), Err(refused));
        }
        let mut long = [0u8; 32];
        long[..n].copy_from_slice(&buf[..n]);
        assert_eq!(Prologue::decode(&long[..n + 1]), Err(PrologueError::Malformed));
        let mut mode = buf;
        mode[5] = 9;
        assert_eq!(Prologue::decode(&mode[..n]), Err(PrologueError::UnknownMode(9)));
        let mut role = buf;
        role[6] = 3;
        assert_eq!(Prologue::decode(&role[..n]), Err(PrologueError::UnknownRole(3)));
        assert_eq!(p.encode(&mut [0u8; 4]), Err(PrologueError::BufferTooSmall));
    }

    #[test]
    fn the_hand_codec_writes_and_reads_postcards_bytes() {
        for version in [0u16, 1, 0x7F, 0x80, 0x3FFF, 0x4000, u16::MAX] {
            for mode in [ConduitMode::Bare, ConduitMode::Stable] {
                let p = Prologue { version, mode, role: SessionRole::Acceptor, fingerprint: FP };
                let wire = (PROLOGUE_MAGIC, version, mode.to_wire(), role_to_wire(p.role), FP);
                let mut theirs = [0u8; PROLOGUE_MAX_LEN];
                let theirs = postcard::to_slice(&wire, &mut theirs).unwrap();
                let (ours, n) = encoded(&p);
                assert_eq!(&ours[..n], &theirs[..], "version {version}");
            }
        }
        // A version varint over `u16` is malformed, as postcard says.
        let mut bad = *b"VOXE\xff\xff\x07\x00\x00";
        assert_eq!(Prologue::decode(&bad), Err(PrologueError::Malformed));
        bad[6] = 0x83;
        assert_eq!(Prologue::decode(&bad), Err(PrologueError::Malformed));
    }

    #[test]
    fn random_bytes_never_panic_and_rarely_decode() {
        // xorshift: deterministic pseudo-random garbage of every length.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ok = 0;
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        for i in 0..rounds {
            let mut buf = [0u8; 24];
            for b in buf.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            if i % 2 == 0 {
                buf[..4].copy_from_slice(&PROLOGUE_MAGIC);
            }
            let len = (s as usize) % buf.len();
            if Prologue::decode(&buf[..len]).is_ok() {
                ok += 1;
            }
        }
        assert!(ok < 100, "{ok} garbage inputs decoded");
    }

    // r[verify prologue.mode]
    #[test]
    fn check_peer_rejects_wrong_mode_schema_and_role() {
        let me = Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, FP);
        let good = Prologue::new(ConduitMode::Stable, SessionRole::Initiator, FP);
        assert_eq!(me.check_peer(&good), Ok(()));
        let bare = Prologue::new(ConduitMode::Bare, SessionRole::Initiator, FP);
        assert_eq!(
            me.check_peer(&bare),
            Err(PrologueError::ModeMismatch { local: ConduitMode::Stable, peer: ConduitMode::Bare })
        );
        let other_fp = SchemaFingerprint([9; 8]);
        let err = me.check_peer(&Prologue::new(ConduitMode::Stable, SessionRole::Initiator, other_fp)).unwrap_err();
        assert_eq!(err, PrologueError::SchemaMismatch { local: FP, peer: other_fp });
        let text = std::format!("{err}");
        assert!(text.contains("0102030405060708") && text.contains("0909090909090909"), "{text}");
        assert_eq!(
            me.check_peer(&Prologue::new(ConduitMode::Stable, SessionRole::Acceptor, FP)),
            Err(PrologueError::RoleConflict { role: SessionRole::Acceptor })
        );
    }
}
