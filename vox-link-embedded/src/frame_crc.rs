//! The frame check: CRC-32/ISO-HDLC (zlib, Ethernet) from the `crc` crate.

use crc::{CRC_32_ISO_HDLC, Crc};

/// CRC-32/ISO-HDLC: polynomial 0x04C11DB7 (reflected), init 0xFFFFFFFF,
/// xor-out 0xFFFFFFFF; `checksum(b"123456789") == 0xCBF43926`. Table-driven
/// (1 KiB of flash).
#[cfg(not(feature = "small-crc"))]
pub(crate) const FRAME_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// The same CRC computed bit by bit: no table (1 KiB less flash), about
/// eight times the work per byte; plenty for UART rates.
#[cfg(feature = "small-crc")]
pub(crate) const FRAME_CRC: Crc<u32, crc::NoTable> = Crc::<u32, crc::NoTable>::new(&CRC_32_ISO_HDLC);

/// Length of the CRC trailer in bytes (little-endian on the wire).
pub(crate) const CRC_LEN: usize = 4;
