//! Trace validation: is what real nodes did a behaviour of the model? (docs/validation.md)
//!
//! The nodes of a run record one trace log each (`--trace-log DIR`, `insync_impl::trace_log`).
//! `validate_dir` reads every log in a directory, merges them into one order that keeps each
//! node's own order and puts every receive after its send, maps each event to a model action,
//! steps the model's actor of that node, and compares the node's recorded state with the
//! model's through the abstraction function after every event. The first event nothing
//! explains is the verdict.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use insync_impl::trace_log::{Event, Input};
use insync_model::config::{Config, Fsync, Variant};
use serde::Serialize;

use crate::mapping;
use merge::MergeError;
use read::NodeLog;
use step::{ModelRun, Outcome};

pub mod merge;
pub mod read;
pub mod rename;
pub mod step;

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
}

/// Validates the run whose nodes wrote their trace logs into `dir`.
pub fn validate_dir(dir: &Path, options: &ValidateOptions) -> Result<Verdict, ValidateError> {
    let logs = read::read_dir(dir)?;
    let cfg = model_config(dir, &logs, options)?;
    let mut notes: Vec<String> = logs
        .iter()
        .filter_map(|log| log.torn.as_ref().map(|(bytes, why)| (log, bytes, why)))
        .map(|(log, bytes, why)| {
            format!("{}: a torn tail of {bytes} bytes dropped ({why})", log.name)
        })
        .collect();
    let merged = match merge::merge(&logs) {
        Ok(merged) => merged,
        Err(error) => return Ok(merge_verdict(dir, cfg.variant, &logs, error)),
    };
    for (n, e) in &merged.from_unrecorded_tails {
        let (log, event) = (&logs[*n], &logs[*n].events[*e]);
        if let Input::Message { from, .. } = &event.input {
            notes.push(format!(
                "{} event {}: a message from the unrecorded last moments of a crashed {} \
                 (checked at the receiver only)",
                log.name,
                event.index,
                read::node_name(*from)
            ));
        }
    }
    let mut run = ModelRun::new(cfg);
    for (position, (n, e)) in merged.order.iter().enumerate() {
        let log = &logs[*n];
        let event = &log.events[*e];
        match run.event(log.node, &log.name, event) {
            Outcome::Explained => {}
            Outcome::Refused(differences) => {
                return Ok(Verdict::Rejected(Box::new(Rejection {
                    variant: cfg.variant,
                    node: log.name.clone(),
                    node_index: event.index,
                    merged_index: position as u64,
                    event: describe(event),
                    differences,
                    command: command(dir, cfg.variant),
                })))
            }
            Outcome::OutOfScope(reason) => {
                return Ok(Verdict::Incomplete(Incomplete {
                    variant: cfg.variant,
                    events: position as u64,
                    reason: format!("{} event {}: {reason}", log.name, event.index),
                }))
            }
        }
    }
    notes.append(&mut run.notes);
    Ok(Verdict::Accepted(Accepted {
        variant: cfg.variant,
        events: merged.order.len() as u64,
        nodes: logs
            .iter()
            .map(|l| (l.name.clone(), l.events.len() as u64))
            .collect(),
        notes,
    }))
}

/// The command that re-validates this run against this variant.
pub fn command(dir: &Path, variant: Variant) -> String {
    format!("insync validate {} --variant {variant}", dir.display())
}

/// The model configuration the nodes ran: their recorded protocol, the variant optionally
/// replaced. Budgets are irrelevant: actors are stepped directly (`step`).
fn model_config(
    dir: &Path,
    logs: &[NodeLog],
    options: &ValidateOptions,
) -> Result<Config, ValidateError> {
    let format = |reason: String| ValidateError::Format {
        path: dir.to_owned(),
        reason,
    };
    let header = logs[0]
        .header()
        .ok_or_else(|| format("no start record".into()))?;
    if let Some(other) = logs
        .iter()
        .filter_map(NodeLog::header)
        .find(|h| h.protocol != header.protocol)
    {
        return Err(format(format!(
            "the nodes ran different protocols: {:?} and {:?}",
            header.protocol, other.protocol
        )));
    }
    let brokers = header.protocol.brokers.len();
    let contiguous = header
        .protocol
        .brokers
        .iter()
        .enumerate()
        .all(|(i, b)| *b as usize == i + 1);
    if !(1..=7).contains(&brokers) || !contiguous {
        return Err(format(format!(
            "brokers {:?}: the model has brokers 1..=N, N at most 7",
            header.protocol.brokers
        )));
    }
    let mut cfg = Config::new(brokers as u8);
    cfg.variant = options
        .variant
        .unwrap_or(mapping::variant_from_impl(header.protocol.variant));
    cfg.unclean_leader_election = header.protocol.unclean_leader_election;
    cfg.min_insync_replicas = u8::try_from(header.protocol.min_insync_replicas)
        .map_err(|_| format("min.insync.replicas out of range".into()))?;
    cfg.fsync = match header.fsync_always {
        true => Fsync::Always,
        false => Fsync::Lazy,
    };
    Ok(cfg)
}

/// No order explains the receives: rejected, unless the sender's log may be missing the send.
fn merge_verdict(dir: &Path, variant: Variant, logs: &[NodeLog], error: MergeError) -> Verdict {
    match error {
        MergeError::Unsent { at: (n, e), from } => {
            let log = &logs[n];
            let event = &log.events[e];
            let differences = vec![match logs.iter().any(|l| l.node == from) {
                true => format!(
                    "no message sent by {} explains this receive (FIFO: after the one the \
                     receive before it named), and no incarnation of it ended in a crash later",
                    read::node_name(from)
                ),
                false => format!("no trace log of {} in the directory", read::node_name(from)),
            }];
            Verdict::Rejected(Box::new(Rejection {
                variant,
                node: log.name.clone(),
                node_index: event.index,
                merged_index: 0,
                event: describe(event),
                differences,
                command: command(dir, variant),
            }))
        }
        MergeError::Cycle { stuck } => Verdict::Rejected(Box::new(Rejection {
            variant,
            node: logs[stuck[0].0].name.clone(),
            node_index: stuck[0].1 as u64,
            merged_index: 0,
            event: describe(&logs[stuck[0].0].events[stuck[0].1]),
            differences: vec![format!(
                "no order of the logs puts every receive after its send: stuck at {stuck:?}"
            )],
            command: command(dir, variant),
        })),
    }
}

/// One event, readably: its input and what it sent.
pub fn describe(event: &Event) -> String {
    let input = match &event.input {
        Input::Start(header) => format!("start ({:?})", header.protocol.variant),
        Input::Message {
            from,
            received,
            message,
        } => {
            format!(
                "receive #{received} from {}: {message:?}",
                read::node_name(*from)
            )
        }
        Input::Timer(timer) => format!("timer {timer:?} fired"),
        other => format!("{other:?}"),
    };
    let sent: Vec<String> = event
        .sent
        .iter()
        .map(|(to, seq, m)| format!("#{seq} to {}: {m:?}", read::node_name(*to)))
        .collect();
    match sent.is_empty() {
        true => input,
        false => format!("{input}; sent {}", sent.join(", ")),
    }
}

/// A line of a report, cut to [`LINE_MAX`] characters (a message of a long run can carry
/// thousands of records; `--json` has them all).
fn shortened(line: &str) -> Cow<'_, str> {
    match line.char_indices().nth(LINE_MAX) {
        None => Cow::Borrowed(line),
        Some((cut, _)) => Cow::Owned(format!(
            "{} ... ({} characters in all; --json has them)",
            &line[..cut],
            line.chars().count()
        )),
    }
}

/// How much of one line a report prints.
const LINE_MAX: usize = 1_000;

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
                    r.variant,
                    r.node,
                    r.node_index,
                    r.merged_index,
                    shortened(&r.event)
                )?;
                for line in &r.differences {
                    writeln!(f, "    {}", shortened(line))?;
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
