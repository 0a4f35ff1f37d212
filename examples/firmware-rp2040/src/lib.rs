//! The vox-embedded demo device on a Raspberry Pi Pico (RP2040): what the
//! two binaries share. The application is `vox-demo-device`; the binaries
//! only set up the byte stream: `uart` (UART0 on GP0/GP1 through a buffered
//! UART) and `usb` (USB CDC-ACM).
#![no_std]

#[cfg(all(feature = "defmt", feature = "defmt-conduit"))]
compile_error!("choose one defmt transport: defmt (RTT, a probe) or defmt-conduit (the conduit's log topic)");
#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

/// Baud rate of the `uart` binary (as the host's `demo --port` opens ports).
pub const BAUD: u32 = 115_200;

/// The device's sessions, the same task in both binaries.
#[embassy_executor::task]
pub async fn sessions() {
    vox_demo_device::sessions(vox_demo_device::StaticMemory, vox_demo_device::EmbassyClock).await
}

/// Stops the firmware: a task could not be spawned (a bug in the binary).
pub fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
