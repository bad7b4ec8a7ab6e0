//! The trace-file reader's fuzz entry point (`fuzz/`, docs/fuzzing.md), in the library so that
//! the committed corpus replays as an ordinary test (`conformance/tests/fuzz_corpus.rs`).

use std::path::Path;

use insync_model::InsyncModel;

use crate::trace::TraceFile;

/// `data` as a trace file: parsed as `TraceFile::read` parses it; a file that passes is
/// re-run along the model as `insync conform` does. Neither may panic, whatever the bytes.
pub fn trace_file(data: &[u8]) {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(file) = TraceFile::from_value(Path::new("fuzzed.json"), &document) else {
        return;
    };
    assert!(!file.states.is_empty(), "a read trace has an initial state");
    let model = InsyncModel::new(file.meta.config);
    if let Ok(trace) = file.to_path(&model) {
        assert_eq!(
            trace.path.len(),
            file.states.len(),
            "one model state per recorded state"
        );
    }
}
