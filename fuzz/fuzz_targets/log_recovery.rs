//! Log recovery: any file as a broker's log, opened as a broker opens its data directory.
//! The scratch directory is per process, under TMPDIR (a tmpfs makes the fsyncs cheap).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        std::env::temp_dir().join(format!("insync-fuzz-log-{}", std::process::id()))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| insync_impl::fuzzing::log_recovery(scratch(), data));
