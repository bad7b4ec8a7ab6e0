//! The trace-file fuzz target's committed corpus (`fuzz/corpus/trace_file/`) and every input
//! that once broke the reader (`fuzz/regressions/trace_file/`), replayed through the entry
//! function the fuzzer calls, on a stable toolchain (docs/fuzzing.md).

use std::path::Path;

#[test]
fn trace_file_corpus_replays() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join("trace_file")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            let entry =
                std::panic::AssertUnwindSafe(|| insync_conformance::fuzzing::trace_file(&bytes));
            assert!(
                std::panic::catch_unwind(entry).is_ok(),
                "trace_file panics on {}",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed > 0, "trace_file has a committed corpus");
}
