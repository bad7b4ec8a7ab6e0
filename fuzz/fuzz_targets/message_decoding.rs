//! Every message type's decoding: the first byte picks the type.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_impl::fuzzing::message_decoding(data));
