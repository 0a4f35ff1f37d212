//! The frame codec, sans-I/O: [`encode_frame`] and [`FrameDecoder`]. The
//! [runner](super::FramedRunner) uses it; it is public for tools, peers
//! with their own I/O, and fuzzing. The format is in the
//! [module docs](super).

mod decoder;
mod encoder;
mod kernels;
// Safe code only, and heavy: not worth running under Miri.
#[cfg(all(test, not(miri)))]
mod tests;

pub use decoder::{Decoded, FrameDecoder, FrameError, max_encoded_run};
pub(crate) use encoder::FrameEncoder;
pub use encoder::encode_frame;
