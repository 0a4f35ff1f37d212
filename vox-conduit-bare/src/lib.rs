//! vox-conduit-bare: placeholder; implemented by a later issue.
#![no_std]
