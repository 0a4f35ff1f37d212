//! QEMU `lm3s6965evb`: UART0 is an ARM PL011 at `0x4000_C000` (IRQ 5).
//!
//! Registers are written by hand: the `lm3s6965` device crate has only the
//! interrupt bindings, and no maintained crate covers this PL011.

use core::convert::Infallible;
use core::future::poll_fn;
use core::ptr;
use core::task::Poll;
use cortex_m::peripheral::NVIC;
use embassy_sync::waitqueue::AtomicWaker;
use lm3s6965::{Interrupt, interrupt};

/// Board name, as QEMU calls the machine.
pub const NAME: &str = "lm3s6965evb";
/// Core clock as QEMU emulates it once [`init_clock`] ran: SysTick and the
/// general-purpose timers count at this rate.
pub const CORE_HZ: u32 = 3_125_000;

/// System control: run-mode clock configuration 2.
const RCC2: usize = 0x400F_E070;

/// Sets QEMU's system clock to 3.125 MHz: RCC2 in use (bit 31), system
/// divider 64 (bits 23..29 = 63), bypassing the PLL (bit 11). QEMU's model
/// divides its 200 MHz by the divider whatever the bypass; real silicon
/// would run at the oscillator's rate / 64. QEMU's emulated CPU runs as
/// fast as ever;
/// only its timers slow down, so SysTick's 2^24-cycle period (the time
/// driver's clock) wraps every 5.4 s instead of every 1.3 s at the reset
/// clock of 12.5 MHz: fewer wake-ups for an idle device.
pub fn init_clock() {
    write_reg(RCC2, (1 << 31) | (63 << 23) | (1 << 11));
}

const UART0: usize = 0x4000_C000;
const DR: usize = 0x000;
const FR: usize = 0x018;
const IBRD: usize = 0x024;
const FBRD: usize = 0x028;
const LCRH: usize = 0x02C;
const CTL: usize = 0x030;
const IM: usize = 0x038;
const MIS: usize = 0x040;
const ICR: usize = 0x044;
/// System control: run-mode clock gating 1 (bit 0: UART0).
const RCGC1: usize = 0x400F_E104;

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
/// Receive and receive-timeout interrupts.
const INT_RX: u32 = (1 << 4) | (1 << 6);
const INT_TX: u32 = 1 << 5;

static RX_WAKER: AtomicWaker = AtomicWaker::new();
static TX_WAKER: AtomicWaker = AtomicWaker::new();

fn read_reg(addr: usize) -> u32 {
    // SAFETY: `addr` is one of this file's PL011 or system-control register
    // addresses, always mapped on this machine; reads have no side effect
    // beyond the device's own (popping DR is how data is taken).
    unsafe { ptr::read_volatile(addr as *const u32) }
}

fn write_reg(addr: usize, value: u32) {
    // SAFETY: as in `read_reg`; this file owns UART0's registers.
    unsafe { ptr::write_volatile(addr as *mut u32, value) }
}

/// Sets or clears interrupt-mask bits; the interrupt handler clears them
/// too, hence the critical section.
fn mask_interrupts(bits: u32, enable: bool) {
    critical_section::with(|_| {
        let im = read_reg(UART0 + IM);
        write_reg(UART0 + IM, if enable { im | bits } else { im & !bits });
    });
}

/// Enables UART0 (8N1, FIFOs on) and its interrupt. (The divisors would
/// give 115200 baud at 12 MHz; QEMU ignores them.)
pub fn init_uart() -> (UartRx, UartTx) {
    write_reg(RCGC1, read_reg(RCGC1) | 1);
    write_reg(UART0 + CTL, 0);
    write_reg(UART0 + IBRD, 6);
    write_reg(UART0 + FBRD, 33);
    write_reg(UART0 + LCRH, (0b11 << 5) | (1 << 4));
    write_reg(UART0 + IM, 0);
    write_reg(UART0 + ICR, 0x7FF);
    write_reg(UART0 + CTL, (1 << 9) | (1 << 8) | 1);
    // SAFETY: the handler below only touches this UART's registers and the
    // wakers; unmasking it cannot break a critical section.
    unsafe { NVIC::unmask(Interrupt::UART0) };
    (UartRx { _private: () }, UartTx { _private: () })
}

#[interrupt]
fn UART0() {
    let pending = read_reg(UART0 + MIS);
    // Mask what fired (the RX level stays up while the FIFO holds data) and
    // let the waiting task drain or fill the FIFO.
    let im = read_reg(UART0 + IM);
    write_reg(UART0 + IM, im & !pending);
    write_reg(UART0 + ICR, pending);
    if pending & INT_RX != 0 {
        RX_WAKER.wake();
    }
    if pending & INT_TX != 0 {
        TX_WAKER.wake();
    }
}

/// The receiving half of UART0.
pub struct UartRx {
    _private: (),
}

/// The sending half of UART0.
pub struct UartTx {
    _private: (),
}

fn drain_rx_fifo(buf: &mut [u8]) -> usize {
    let mut n = 0;
    for byte in buf.iter_mut() {
        if read_reg(UART0 + FR) & FR_RXFE != 0 {
            break;
        }
        // Bits 8..12 carry framing/parity/break/overrun flags: the frame
        // CRC catches what they would report, so they are dropped here.
        *byte = read_reg(UART0 + DR) as u8;
        n += 1;
    }
    n
}

fn fill_tx_fifo(buf: &[u8]) -> usize {
    let mut n = 0;
    for &byte in buf {
        if read_reg(UART0 + FR) & FR_TXFF != 0 {
            break;
        }
        write_reg(UART0 + DR, u32::from(byte));
        n += 1;
    }
    n
}

impl embedded_io_async::ErrorType for UartRx {
    type Error = Infallible;
}

impl embedded_io_async::ErrorType for UartTx {
    type Error = Infallible;
}

// `poll_fn`s rather than `async fn`s: no state machine around them (and
// no panic path for polling after completion), smaller firmware.
impl embedded_io_async::Read for UartRx {
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Infallible>> {
        poll_fn(move |cx| {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = drain_rx_fifo(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            RX_WAKER.register(cx.waker());
            mask_interrupts(INT_RX, true);
            // A byte that arrived before the interrupt was unmasked.
            match drain_rx_fifo(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
    }
}

impl embedded_io_async::Write for UartTx {
    fn write(&mut self, buf: &[u8]) -> impl Future<Output = Result<usize, Infallible>> {
        poll_fn(move |cx| {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = fill_tx_fifo(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            TX_WAKER.register(cx.waker());
            mask_interrupts(INT_TX, true);
            match fill_tx_fifo(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
    }

    /// All of `buf`, filling the FIFO whenever it has room: one `poll_fn`
    /// in place of the trait's loop over `write` (smaller firmware).
    fn write_all(&mut self, buf: &[u8]) -> impl Future<Output = Result<(), Infallible>> {
        let mut rest = buf;
        poll_fn(move |cx| {
            loop {
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                let mut n = fill_tx_fifo(rest);
                if n == 0 {
                    TX_WAKER.register(cx.waker());
                    mask_interrupts(INT_TX, true);
                    n = fill_tx_fifo(rest);
                    if n == 0 {
                        return Poll::Pending;
                    }
                }
                rest = rest.get(n..).unwrap_or(&[]);
            }
        })
    }

    fn flush(&mut self) -> impl Future<Output = Result<(), Infallible>> {
        // Rare and short (one FIFO at line rate): polling is enough.
        poll_fn(|cx| {
            if read_reg(UART0 + FR) & FR_BUSY != 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
    }
}
