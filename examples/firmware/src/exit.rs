//! Ending a run under QEMU: semihosting exit with a status, and the panic
//! handler (which exits with failure, so a panicking test never hangs CI).

use cortex_m_semihosting::debug;

/// Ends the emulation with status 0 (`true`) or 1 (`false`). On real
/// hardware without a debugger attached this traps; only tests call it.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    // `exit` returns only when no debugger or emulator listens.
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(feature = "defmt")]
    defmt::error!("panic: {}", defmt::Display2Format(info));
    #[cfg(not(feature = "defmt"))]
    let _ = info;
    exit(false)
}
