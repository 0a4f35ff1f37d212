//! Host examples of vox-embedded; the binaries live in `src/bin`.
