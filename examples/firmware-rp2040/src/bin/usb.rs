//! The demo device over USB CDC-ACM (embassy-usb): plug the Pico in and
//! run `demo --port /dev/ttyACM0` on the host. Closing the port (DTR
//! dropped) or unplugging ends the link, not the session: the stable
//! conduit resumes on the next link when the host opens the port again.
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_futures::select::select;
use embassy_rp::bind_interrupts;
use embassy_rp::peripherals::USB;
use embassy_rp::usb::{Driver, InterruptHandler};
use embassy_usb::class::cdc_acm::{CdcAcmClass, ControlChanged, State};
use embassy_usb::{Builder, UsbDevice};
use static_cell::StaticCell;
use vox_demo_device::{EmbassyClock, StaticMemory};
use vox_firmware_rp2040::{halt, sessions};
use vox_link_embedded::usb::{self, CdcAcmReader, CdcAcmWriter};

bind_interrupts!(struct Irqs {
    USBCTRL_IRQ => InterruptHandler<USB>;
});

type UsbDriver = Driver<'static, USB>;

/// Full-speed USB: bulk packets of at most 64 bytes.
const MAX_PACKET: u16 = 64;

#[embassy_executor::task]
async fn usb_device(mut device: UsbDevice<'static, UsbDriver>) {
    device.run().await
}

// r[impl board.usb]
/// One framed link per time the host opens the port: it ends on a close,
/// an unplug (reads and writes fail) or a line error; the session goes on.
#[embassy_executor::task]
async fn serial_port(
    mut rx: CdcAcmReader<'static, UsbDriver>,
    mut tx: CdcAcmWriter<'static, UsbDriver>,
    control: ControlChanged<'static>,
) {
    loop {
        usb::port_opened(&mut rx, &control).await;
        tx.reset();
        select(vox_demo_device::run_link(StaticMemory, EmbassyClock, &mut rx, &mut tx), usb::port_closed(&control))
            .await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    let driver = Driver::new(p.USB, Irqs);

    let mut config = embassy_usb::Config::new(0x1209, 0x0001);
    config.manufacturer = Some("vox-embedded");
    config.product = Some("vox demo device");
    config.serial_number = Some("vox-rp2040");
    config.max_power = 100;
    config.max_packet_size_0 = 64;

    static CONFIG_DESCRIPTOR: StaticCell<[u8; 256]> = StaticCell::new();
    static BOS_DESCRIPTOR: StaticCell<[u8; 256]> = StaticCell::new();
    static CONTROL_BUF: StaticCell<[u8; 64]> = StaticCell::new();
    static STATE: StaticCell<State<'static>> = StaticCell::new();
    static READ_BUF: StaticCell<[u8; MAX_PACKET as usize]> = StaticCell::new();

    let mut builder = Builder::new(
        driver,
        config,
        CONFIG_DESCRIPTOR.init([0; 256]),
        BOS_DESCRIPTOR.init([0; 256]),
        &mut [],
        CONTROL_BUF.init([0; 64]),
    );
    let class = CdcAcmClass::new(&mut builder, STATE.init(State::new()), MAX_PACKET);
    let device = builder.build();

    let (rx, tx, control) = usb::cdc_acm_stream(class, READ_BUF.init([0; MAX_PACKET as usize]));

    spawner.spawn(usb_device(device).unwrap_or_else(|_| halt()));
    spawner.spawn(serial_port(rx, tx, control).unwrap_or_else(|_| halt()));
    spawner.spawn(sessions().unwrap_or_else(|_| halt()));
}
