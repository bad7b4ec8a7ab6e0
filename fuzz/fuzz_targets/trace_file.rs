//! The conformance harness's trace-file reader, and the model re-run along what it accepts.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_conformance::fuzzing::trace_file(data));
