//! vox-conduit-stable: placeholder; implemented by a later issue.
#![no_std]
