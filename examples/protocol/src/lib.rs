//! What the demo's host and device say to each other, shared by both:
//! the endpoints each side serves (declared once with `vox_rpc::declare!`),
//! and the message family of the hand-written protocol they replace (kept
//! for the conduit demos and as the baseline of the benchmarks). `no_std`,
//! borrowed fields for zero-copy receive.
#![no_std]

use postcard_schema::Schema;
use serde::{Deserialize, Serialize};

/// A pin to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub struct Pin {
    /// Pin number.
    pub pin: u8,
    /// High or low.
    pub high: bool,
}

/// A telemetry sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub struct Sample<'a> {
    /// Sample number, from 0 in each session.
    pub seq: u32,
    /// Supply voltage.
    pub millivolts: u16,
    /// Which rail.
    pub label: &'a str,
}

vox_rpc::declare! {
    /// Host → device: drives an output pin; fails for a pin the device lacks.
    pub endpoint SetOutput = "demo/set_output": Pin => (), &'a str;
    /// Host → device: reads a sensor.
    pub endpoint ReadSensor = "demo/read_sensor": u8 => i32;
    /// Host → device: sends the bytes back (borrowed both ways).
    pub endpoint Echo = "demo/echo": &'a [u8] => &'a [u8];
    /// Device → host: the host's clock (ms since it started).
    pub endpoint HostTime = "demo/host_time": () => u64;
    /// The device's telemetry: a sample every 20 ms (reliable: the host
    /// credits each one it has taken).
    pub topic Telemetry = "demo/telemetry": Sample<'a>;
    /// The device's log: text lines (a lossy ring: the logger never waits).
    pub topic Log = "demo/log": &'a str;
}

/// What the device does for [`SetOutput`]: `outputs` is the pin state.
pub fn set_output(outputs: &mut u32, Pin { pin, high }: Pin) -> Result<(), &'static str> {
    if pin >= 32 {
        return Err("no such pin");
    }
    if high {
        *outputs |= 1 << pin;
    } else {
        *outputs &= !(1 << pin);
    }
    Ok(())
}

/// Every message either side sends (the hand-written protocol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub enum DemoMsg<'a> {
    /// Host → device: a command to run.
    Request {
        /// Matches the reply.
        id: u32,
        /// What to do.
        #[serde(borrow)]
        command: Command<'a>,
    },
    /// Device → host: the outcome of request `id`.
    Reply {
        /// The request's id.
        id: u32,
        /// What happened.
        #[serde(borrow)]
        outcome: Outcome<'a>,
    },
    /// Device → host: a periodic sample.
    Telemetry {
        /// Sample number.
        seq: u32,
        /// Supply voltage.
        millivolts: u16,
        /// Which rail.
        label: &'a str,
    },
}

/// Host commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub enum Command<'a> {
    /// Drive an output pin.
    SetOutput {
        /// Pin number.
        pin: u8,
        /// High or low.
        high: bool,
    },
    /// Read a sensor.
    ReadSensor {
        /// Sensor number.
        sensor: u8,
    },
    /// Send the payload back.
    Echo(&'a [u8]),
}

/// Device replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Schema)]
pub enum Outcome<'a> {
    /// The command ran.
    Done,
    /// A sensor value.
    Value(i32),
    /// The echoed payload.
    Echo(&'a [u8]),
    /// The command failed.
    Failed(&'a str),
}

vox_types::msg_family!(
    /// The demo's message family.
    pub DemoFamily => DemoMsg<'a>
);

/// What a device answers to `command` (the same logic on host simulations
/// and on the firmware). `outputs` is the pin state.
pub fn device_reply<'a>(command: &Command<'a>, outputs: &mut u32) -> Outcome<'a> {
    match *command {
        Command::SetOutput { pin, high } if pin < 32 => {
            if high {
                *outputs |= 1 << pin;
            } else {
                *outputs &= !(1 << pin);
            }
            Outcome::Done
        }
        Command::SetOutput { .. } => Outcome::Failed("no such pin"),
        Command::ReadSensor { sensor } => Outcome::Value(sensor_value(sensor)),
        Command::Echo(bytes) => Outcome::Echo(bytes),
    }
}

/// The device's answer to `msg`: the reply to a request, nothing for any
/// other message.
pub fn answer<'a>(msg: &DemoMsg<'a>, outputs: &mut u32) -> Option<DemoMsg<'a>> {
    match msg {
        DemoMsg::Request { id, command } => Some(DemoMsg::Reply { id: *id, outcome: device_reply(command, outputs) }),
        DemoMsg::Reply { .. } | DemoMsg::Telemetry { .. } => None,
    }
}

/// A deterministic "sensor" reading.
pub const fn sensor_value(sensor: u8) -> i32 {
    (sensor as i32) * 100 - 40
}

/// Largest frame payload on the demo's serial line (both ends).
pub const UART_MTU: usize = 256;

/// Stable-conduit tunables of the demo's serial line, the same on the host
/// and the device: timers sized for an emulated UART over loopback TCP.
pub const UART_CONFIG: vox_conduit_stable::StableConfig = vox_conduit_stable::StableConfig {
    max_message: 200,
    ack_every: 8,
    ack_delay_ms: 10,
    keepalive_ms: 200,
    timeout_ms: 800,
    retry_delay_ms: 20,
    linger_ms: 2000,
    connect_timeout_ms: 10_000,
};
