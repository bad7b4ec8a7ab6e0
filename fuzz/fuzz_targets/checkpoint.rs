//! Checkpoint files: the controller state, the leader-epoch cache, the high watermark.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_impl::fuzzing::checkpoint_reading(data));
