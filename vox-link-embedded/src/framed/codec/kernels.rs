//! The codec's two hot loops, chosen per build: the frame check (CRC-32)
//! and the search for the next zero byte. Hosts (feature `fast-codec`, on
//! with `std`) use `crc32fast` and `memchr` (SIMD where the CPU has it);
//! MCU builds use the `crc` crate's 1 KiB table, or with `small-crc` no
//! table at all, and code a byte at a time (no zero search).

/// Length of the CRC trailer in bytes (little-endian on the wire).
pub(crate) const CRC_LEN: usize = 4;

/// CRC-32/ISO-HDLC (zlib, Ethernet): polynomial 0x04C11DB7 (reflected),
/// init 0xFFFFFFFF, xor-out 0xFFFFFFFF; `crc32(b"123456789") == 0xCBF43926`.
#[cfg(feature = "fast-codec")]
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// CRC-32/ISO-HDLC, table-driven (1 KiB of flash).
#[cfg(all(not(feature = "fast-codec"), not(feature = "small-crc")))]
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    CRC.checksum(data)
}

/// CRC-32/ISO-HDLC bit by bit: no table (1 KiB less flash), about eight
/// times the work per byte; plenty for UART rates.
#[cfg(all(not(feature = "fast-codec"), feature = "small-crc"))]
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const CRC: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);
    CRC.checksum(data)
}

/// Index of the first zero byte of `data`.
#[cfg(feature = "fast-codec")]
#[inline]
pub(crate) fn find_zero(data: &[u8]) -> Option<usize> {
    memchr::memchr(0, data)
}

/// Index of the first zero byte of `data` (a byte loop). MCU builds code
/// and decode a byte at a time; only the tests' run-at-a-time codec uses
/// it there.
#[cfg(all(test, not(feature = "fast-codec")))]
#[inline]
pub(crate) fn find_zero(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == 0)
}
