//! The frame decoder and the accepting side of the handshake, on any bytes a peer may send.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_impl::fuzzing::frames_and_handshake(data));
