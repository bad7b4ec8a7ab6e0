//! The Model verdict of a chaos run: `validate_dir` over the trace logs every node wrote, with
//! the variant they recorded (docs/chaos.md "The verdicts"). Only an accepted validation
//! passes; a rejected event, logs that cannot be read, and a run the validator cannot decide
//! all fail, so a run that was not validated is never reported as passed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::validate::{self, ValidateOptions, Verdict};

/// What validation said of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ModelVerdict {
    /// Every recorded event of every node is a step of the model of the nodes' variant.
    Passed {
        variant: String,
        /// Events validated, all nodes together.
        events: u64,
        /// Each node's log and its event count.
        nodes: Vec<(String, u64)>,
        /// Merged orders tried: validation needs one (docs/validation.md, step 3).
        merges_searched: u64,
        seconds: f64,
        /// What the logs left out and validation therefore did not check.
        notes: Vec<String>,
    },
    /// The first event no model step explains, as `insync validate` reports it.
    Failed {
        report: String,
        command: String,
        seconds: f64,
    },
    /// The validator could not decide (a trace gap, something outside the model's
    /// vocabulary): no evidence either way, and not a pass.
    Undecided {
        report: String,
        command: String,
        seconds: f64,
    },
    /// The logs could not be read.
    Unreadable { reason: String, dir: PathBuf },
}

impl ModelVerdict {
    pub fn passed(&self) -> bool {
        matches!(self, ModelVerdict::Passed { .. })
    }
}

/// Validates the logs in `dir` (CPU-bound: off the runtime's worker threads).
pub async fn model(dir: &Path) -> ModelVerdict {
    let owned = dir.to_owned();
    let started = Instant::now();
    let options = ValidateOptions { variant: None };
    let validated =
        tokio::task::spawn_blocking(move || validate::validate_dir(&owned, &options)).await;
    let seconds = started.elapsed().as_secs_f64();
    let verdict = match validated {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(error)) => {
            return ModelVerdict::Unreadable {
                reason: error.to_string(),
                dir: dir.to_owned(),
            }
        }
        Err(panic) => {
            return ModelVerdict::Unreadable {
                reason: format!("the validator panicked: {panic}"),
                dir: dir.to_owned(),
            }
        }
    };
    judge(dir, verdict, seconds)
}

fn judge(dir: &Path, verdict: Verdict, seconds: f64) -> ModelVerdict {
    let report = verdict.to_string();
    match verdict {
        Verdict::Accepted(accepted) => ModelVerdict::Passed {
            variant: accepted.variant.to_string(),
            events: accepted.events,
            nodes: accepted.nodes,
            merges_searched: 1,
            seconds,
            notes: accepted.notes,
        },
        Verdict::Rejected(rejection) => ModelVerdict::Failed {
            report,
            command: rejection.command,
            seconds,
        },
        Verdict::Incomplete(incomplete) => ModelVerdict::Undecided {
            report,
            command: validate::command(dir, incomplete.variant),
            seconds,
        },
    }
}
