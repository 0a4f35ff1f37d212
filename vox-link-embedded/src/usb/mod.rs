//! USB byte streams for a [`FramedLink`](crate::FramedLink).
//!
//! USB CDC-ACM (a virtual serial port) moves bytes in bulk packets, and a
//! host completes a bulk transfer only on a short packet: a frame whose last
//! packet is exactly the maximum packet size would sit in the host's buffer
//! until the next frame comes. [`PacketWriter`] is the write half that
//! avoids this: it gathers bytes into full packets, and on `flush` (which
//! the framed runner calls whenever it has written all it has) ends the
//! transfer with a short packet, or with a zero-length packet after a full
//! one.
//!
//! With the `embassy-usb` feature, [`cdc_acm_stream`] turns an embassy-usb
//! CDC-ACM class into a reader and a [`PacketWriter`] (the two halves a
//! [`FramedRunner`](crate::FramedRunner) runs on) and the port's control
//! lines; [`port_opened`] and [`port_closed`] bound one link's life to one
//! opening of the port by the host.

#[cfg(feature = "embassy-usb")]
mod cdc_acm;
mod packet_writer;

#[cfg(feature = "embassy-usb")]
pub use cdc_acm::{CdcAcmReader, CdcAcmWriter, cdc_acm_stream, port_closed, port_opened};
pub use packet_writer::{PacketSink, PacketWriter};
