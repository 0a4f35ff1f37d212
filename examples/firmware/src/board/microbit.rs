//! QEMU `microbit`: the nRF51822's UART0 (Cortex-M0), through `nrf51-pac`.
//!
//! The tick is SysTick, which QEMU emulates on this machine; a real nRF51
//! has no SysTick and would need an RTC-based time driver instead.

use core::convert::Infallible;
use core::future::poll_fn;
use core::task::Poll;
use cortex_m::peripheral::NVIC;
use embassy_sync::waitqueue::AtomicWaker;
use nrf51_pac::{Interrupt, UART0, interrupt};

/// Board name, as QEMU calls the machine.
pub const NAME: &str = "microbit";
/// Core clock (SysTick counts at this rate).
pub const CORE_HZ: u32 = 16_000_000;

/// micro:bit edge-connector pins wired to the USB interface chip.
const TX_PIN: u32 = 24;
const RX_PIN: u32 = 25;

static RX_WAKER: AtomicWaker = AtomicWaker::new();
static TX_WAKER: AtomicWaker = AtomicWaker::new();

fn uart() -> &'static nrf51_pac::uart0::RegisterBlock {
    // SAFETY: UART0's register block is always mapped; this module is its
    // only user, and every access is a single volatile register access.
    unsafe { &*UART0::ptr() }
}

/// Clears an event register (any of this UART's `EVENTS_*`).
fn clear_event<R>(event: &nrf51_pac::generic::Reg<R>)
where
    R: nrf51_pac::generic::RegisterSpec<Ux = u32> + nrf51_pac::generic::Writable + nrf51_pac::generic::Resettable,
{
    // SAFETY: 0 is the "not generated" value of every event register.
    event.write(|w| unsafe { w.bits(0) });
}

/// Enables UART0 (8N1, 115200 baud, both directions) and its interrupt.
pub fn init_uart() -> (UartRx, UartTx) {
    let u = uart();
    // SAFETY: a GPIO pin number is a valid PSELTXD value.
    u.pseltxd.write(|w| unsafe { w.bits(TX_PIN) });
    // SAFETY: a GPIO pin number is a valid PSELRXD value.
    u.pselrxd.write(|w| unsafe { w.bits(RX_PIN) });
    u.baudrate.write(|w| w.baudrate().baud115200());
    u.enable.write(|w| w.enable().enabled());
    clear_event(&u.events_rxdrdy);
    clear_event(&u.events_txdrdy);
    // SAFETY: writing 1 to a task register triggers the task.
    u.tasks_startrx.write(|w| unsafe { w.bits(1) });
    // SAFETY: writing 1 to a task register triggers the task.
    u.tasks_starttx.write(|w| unsafe { w.bits(1) });
    // SAFETY: the handler only touches this UART's interrupt enables and
    // the wakers; unmasking it cannot break a critical section.
    unsafe { NVIC::unmask(Interrupt::UART0) };
    (UartRx { _private: () }, UartTx { busy: false })
}

#[interrupt]
fn UART0() {
    let u = uart();
    // Disable what fired (the events stay set for the task to consume) and
    // wake the task waiting for it.
    if u.events_rxdrdy.read().bits() != 0 {
        u.intenclr.write(|w| w.rxdrdy().set_bit());
        RX_WAKER.wake();
    }
    if u.events_txdrdy.read().bits() != 0 {
        u.intenclr.write(|w| w.txdrdy().set_bit());
        TX_WAKER.wake();
    }
}

/// The receiving half of UART0.
pub struct UartRx {
    _private: (),
}

/// The sending half of UART0.
pub struct UartTx {
    /// A byte was written and its TXDRDY event not yet consumed.
    busy: bool,
}

fn drain_rx(buf: &mut [u8]) -> usize {
    let u = uart();
    let mut n = 0;
    for byte in buf.iter_mut() {
        if u.events_rxdrdy.read().bits() == 0 {
            break;
        }
        // Clear the event before reading: the UART raises it again when
        // more bytes wait in its FIFO.
        clear_event(&u.events_rxdrdy);
        *byte = u.rxd.read().rxd().bits();
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

// A `poll_fn` rather than an `async fn`: no state machine around it (and
// no panic path for polling after completion), smaller firmware.
impl embedded_io_async::Read for UartRx {
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Infallible>> {
        poll_fn(move |cx| {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let n = drain_rx(buf);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            RX_WAKER.register(cx.waker());
            uart().intenset.write(|w| w.rxdrdy().set_bit());
            match drain_rx(buf) {
                0 => Poll::Pending,
                n => Poll::Ready(Ok(n)),
            }
        })
    }
}

impl UartTx {
    /// Waits until the previous byte left the transmitter.
    async fn idle(&mut self) {
        if !self.busy {
            return;
        }
        poll_fn(|cx| {
            let u = uart();
            if u.events_txdrdy.read().bits() == 0 {
                TX_WAKER.register(cx.waker());
                u.intenset.write(|w| w.txdrdy().set_bit());
                if u.events_txdrdy.read().bits() == 0 {
                    return Poll::Pending;
                }
            }
            clear_event(&u.events_txdrdy);
            Poll::Ready(())
        })
        .await;
        self.busy = false;
    }
}

impl embedded_io_async::Write for UartTx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let Some(&byte) = buf.first() else { return Ok(0) };
        // The nRF51 UART takes one byte at a time (no transmit FIFO).
        self.idle().await;
        // SAFETY: any byte value is valid for TXD.
        uart().txd.write(|w| unsafe { w.txd().bits(byte) });
        self.busy = true;
        Ok(1)
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        self.idle().await;
        Ok(())
    }
}
