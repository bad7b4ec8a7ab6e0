//! Trace logs of real runs: one record per input a node's core handled, with what came out of
//! it and the state after it, so that `insync validate` can check the run against the model
//! (docs/validation.md).
//!
//! - [`event`]: what one record holds (the input, the messages sent, the writes, the state);
//! - [`stored`]: a record's shape on disk, its record lists as runs;
//! - [`file`]: the on-disk framing (length, CRC-32C, value) and the reader, which drops a torn
//!   tail after a crash and says how many bytes it dropped;
//! - [`writer`]: the recorder the event loop calls, a bounded queue to a writer thread that
//!   never blocks the core: when the queue is full records are counted, not queued, and a
//!   [`event::Input::Gap`] record says how many were lost; when the file reaches its size bound
//!   recording stops with a final [`event::Input::Full`] record.
//!
//! The records are encoded with `wire::codec` like everything else that leaves the process.

pub mod event;
pub mod file;
pub mod stored;
pub mod writer;

pub use event::{Event, Input, LogWrite, NodeState, TraceHeader, TracedMessage};
pub use file::{read_log, ReadLog, TraceFileError};
pub use writer::{TraceLog, TraceOptions};

/// Extension of a node's trace log file (`broker-2.tlog`, `controller.tlog`).
pub const TRACE_FILE_EXTENSION: &str = "tlog";

/// The file name of `node`'s trace log inside a `--trace-log` directory.
pub fn file_name(node: crate::protocol::NodeId) -> String {
    match node {
        crate::protocol::NodeId::Controller => format!("controller.{TRACE_FILE_EXTENSION}"),
        crate::protocol::NodeId::Broker(b) => format!("broker-{b}.{TRACE_FILE_EXTENSION}"),
        crate::protocol::NodeId::Client(c) => format!("client-{c}.{TRACE_FILE_EXTENSION}"),
    }
}
