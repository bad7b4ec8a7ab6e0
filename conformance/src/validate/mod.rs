//! Trace validation: is what real nodes did a behaviour of the model? (docs/validation.md)
//!
//! The nodes of a run record one trace log each (`--trace-log DIR`, `insync_impl::trace_log`).
//! `validate_dir` reads every log in a directory, merges them into one order that keeps each
//! node's own order and puts every receive after its send, maps each event to a model action,
//! steps the model's actor of that node, and compares the node's recorded state with the
//! model's through the abstraction function after every event. The first event nothing
//! explains is the verdict.

use std::fmt;
use std::path::{Path, PathBuf};

use insync_model::config::Variant;
use serde::Serialize;

/// What to validate against.
#[derive(Clone, Debug, Default)]
pub struct ValidateOptions {
    /// The model variant to check the run against; `None`: the variant the nodes recorded.
    /// Another variant than the nodes ran is how the validator is shown to reject.
    pub variant: Option<Variant>,
}

/// The answer for one run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every recorded event is a step of the model, and every state after it matches.
    Accepted(Accepted),
    /// The first event no step of the model explains.
    Rejected(Box<Rejection>),
    /// Neither: a log has a recorded gap (records the writer could not keep), or the run
    /// leaves what the model can express. The reason says which, and where.
    Incomplete(Incomplete),
}

impl Verdict {
    /// Only an accepted run is a clean validation.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted(_))
    }
}

/// A run the model explains.
#[derive(Clone, Debug, Serialize)]
pub struct Accepted {
    pub variant: Variant,
    /// Events checked, all nodes together.
    pub events: u64,
    /// One entry per node log read: its name and its event count.
    pub nodes: Vec<(String, u64)>,
    /// What the logs left out and validation therefore did not check (a torn tail dropped).
    pub notes: Vec<String>,
}

/// The first unexplained event.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    pub variant: Variant,
    /// The node whose event it is (`broker 2`, `controller`).
    pub node: String,
    /// Its position in that node's log (0-based) and in the merged order.
    pub node_index: u64,
    pub merged_index: u64,
    /// The event, readably.
    pub event: String,
    /// Why the model refuses it: a field-level difference per line, model first.
    pub differences: Vec<String>,
    /// The command that re-validates just this run.
    pub command: String,
}

/// A run validation could not decide.
#[derive(Clone, Debug, Serialize)]
pub struct Incomplete {
    pub variant: Variant,
    /// Events checked before the point that stopped validation.
    pub events: u64,
    pub reason: String,
}

/// Validation could not start: the logs are missing or unreadable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no trace logs (files named *.tlog) in this directory")]
    NoLogs(PathBuf),
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("trace validation is not built yet on this branch")]
    NotBuilt,
}

/// Validates the run whose nodes wrote their trace logs into `dir`.
pub fn validate_dir(dir: &Path, options: &ValidateOptions) -> Result<Verdict, ValidateError> {
    let _ = (dir, options);
    Err(ValidateError::NotBuilt)
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accepted(a) => write!(
                f,
                "ACCEPTED against {}: {} events of {} nodes",
                a.variant,
                a.events,
                a.nodes.len()
            ),
            Verdict::Rejected(r) => {
                writeln!(
                    f,
                    "REJECTED against {}: {} event {} (merged {}): {}",
                    r.variant, r.node, r.node_index, r.merged_index, r.event
                )?;
                for line in &r.differences {
                    writeln!(f, "    {line}")?;
                }
                write!(f, "re-validate: {}", r.command)
            }
            Verdict::Incomplete(i) => write!(
                f,
                "INCOMPLETE against {} after {} events: {}",
                i.variant, i.events, i.reason
            ),
        }
    }
}
