//! State-change logging: defmt with the `defmt` feature, nothing without.

// r[impl port.defmt]
/// Logs a session state change at info level (attached, reattached,
/// finished).
macro_rules! state_info {
    ($($t:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::info!($($t)*);
    }};
}

/// Logs a lost link or an ended session at warn level.
macro_rules! state_warn {
    ($($t:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::warn!($($t)*);
    }};
}
