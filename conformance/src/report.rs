//! Replaying a set of traces and reporting it: traces and steps replayed, throughput,
//! divergences (each with the one command that replays just that trace), coverage, and for
//! counterexamples the real consequence. Text for people, `--json` for machines.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use insync_model::describe::ACTION_KINDS;
use insync_model::msg::{MESSAGE_TYPES, TIMER_KINDS};
use insync_model::Variant;
use serde_json::{json, Value};

use crate::replay::{replay, Consequence, Covered, Divergence, ReplayOptions};
use crate::trace::ModelTrace;

/// A trace to replay and the file it was read from or written to.
pub struct Entry {
    pub file: PathBuf,
    pub trace: ModelTrace,
}

/// One divergence, ready to print.
#[derive(Clone, Debug)]
pub struct Reported {
    pub file: PathBuf,
    pub divergence: Divergence,
    /// The command that replays just this trace.
    pub command: String,
}

/// The reachable graph's size, when it was enumerated (cover).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reachable {
    pub states: usize,
    pub transitions: usize,
    pub complete: bool,
}

/// Everything a run of `conform` reports.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub traces: usize,
    pub steps: usize,
    pub elapsed: Duration,
    pub divergences: Vec<Reported>,
    pub covered: Covered,
    pub reachable: Option<Reachable>,
    pub consequences: Vec<(PathBuf, Consequence)>,
    pub impl_variant: Option<String>,
}

impl Summary {
    pub fn traces_per_minute(&self) -> f64 {
        per_minute(self.traces, self.elapsed)
    }
    pub fn steps_per_minute(&self) -> f64 {
        per_minute(self.steps, self.elapsed)
    }
    /// Message types the model defines that no replayed step delivered.
    pub fn message_types_missing(&self) -> Vec<&'static str> {
        MESSAGE_TYPES
            .iter()
            .copied()
            .filter(|t| !self.covered.message_types.contains(t))
            .collect()
    }
    /// Timer kinds the model defines that no replayed step fired.
    pub fn timer_kinds_missing(&self) -> Vec<&'static str> {
        TIMER_KINDS
            .iter()
            .copied()
            .filter(|k| !self.covered.timer_kinds.contains(k))
            .collect()
    }
    pub fn action_kinds_missing(&self) -> Vec<&'static str> {
        ACTION_KINDS
            .iter()
            .copied()
            .filter(|k| !self.covered.action_kinds.contains(k))
            .collect()
    }
}

fn per_minute(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    count as f64 * 60.0 / seconds
}

/// The command that replays one trace file, as the user would type it.
/// A trace replayed from memory (`insync conform --source` without `--out`) has no file yet:
/// the command then says how to get one.
pub fn replay_command(file: &std::path::Path, impl_variant: Option<Variant>) -> String {
    let written = file.exists();
    let file = match written {
        true => file.to_owned(),
        false => std::path::Path::new("DIR").join(file),
    };
    let mut command = format!("insync conform --traces {}", file.display());
    if let Some(v) = impl_variant {
        command.push_str(&format!(" --variant {}", v.name()));
    }
    match written {
        true => command,
        false => format!("add --out DIR to the same command to keep its traces, then {command}"),
    }
}

/// Replays every entry in order; `progress` is called after each trace.
pub async fn replay_all(
    entries: &[Entry],
    options: &ReplayOptions,
    reachable: Option<Reachable>,
    mut progress: impl FnMut(usize, &Summary),
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary {
        reachable,
        impl_variant: options.impl_variant.map(|v| v.name().to_owned()),
        ..Summary::default()
    };
    for (i, entry) in entries.iter().enumerate() {
        let outcome = replay(&entry.trace, options).await;
        summary.traces += 1;
        summary.steps += outcome.steps_replayed;
        let covered = &mut summary.covered;
        covered.action_kinds.extend(outcome.covered.action_kinds);
        covered.message_types.extend(outcome.covered.message_types);
        covered.timer_kinds.extend(outcome.covered.timer_kinds);
        covered.states.extend(outcome.covered.states);
        covered.transitions.extend(outcome.covered.transitions);
        if let Some(divergence) = outcome.divergence {
            summary.divergences.push(Reported {
                file: entry.file.clone(),
                command: replay_command(&entry.file, options.impl_variant),
                divergence,
            });
        }
        if let Some(consequence) = outcome.consequence {
            summary.consequences.push((entry.file.clone(), consequence));
        }
        summary.elapsed = started.elapsed();
        progress(i + 1, &summary);
    }
    summary.elapsed = started.elapsed();
    summary
}

/// The summary as text.
pub fn text(summary: &Summary) -> String {
    let mut out = String::new();
    for reported in &summary.divergences {
        out.push_str(&divergence_text(reported));
        out.push('\n');
    }
    for (file, consequence) in &summary.consequences {
        out.push_str(&consequence_text(file, consequence));
        out.push('\n');
    }
    out.push_str(&format!(
        "replayed {} traces, {} steps in {:.1} s: {:.0} traces/min, {:.0} steps/min\n",
        summary.traces,
        summary.steps,
        summary.elapsed.as_secs_f64(),
        summary.traces_per_minute(),
        summary.steps_per_minute()
    ));
    if let Some(v) = &summary.impl_variant {
        out.push_str(&format!("nodes ran variant {v}\n"));
    }
    out.push_str(&format!("divergences: {}\n", summary.divergences.len()));
    let covered = &summary.covered;
    out.push_str(&format!(
        "action kinds: {}/{} {:?}{}\n",
        covered.action_kinds.len(),
        ACTION_KINDS.len(),
        covered.action_kinds,
        missing(&summary.action_kinds_missing())
    ));
    out.push_str(&format!(
        "message types delivered to real nodes: {}/{} {:?}{}\n",
        covered.message_types.len(),
        MESSAGE_TYPES.len(),
        covered.message_types,
        missing(&summary.message_types_missing())
    ));
    out.push_str(&format!(
        "timer kinds fired: {}/{} {:?}{}\n",
        covered.timer_kinds.len(),
        TIMER_KINDS.len(),
        covered.timer_kinds,
        missing(&summary.timer_kinds_missing())
    ));
    match summary.reachable {
        Some(r) => out.push_str(&format!(
            "model states covered: {}/{}, transitions covered: {}/{}{}\n",
            covered.states.len(),
            r.states,
            covered.transitions.len(),
            r.transitions,
            if r.complete {
                " (reachable within the bounds)"
            } else {
                " (enumeration stopped at the state limit: partial graph)"
            }
        )),
        None => out.push_str(&format!(
            "model states covered: {}, transitions covered: {} (reachable set not enumerated)\n",
            covered.states.len(),
            covered.transitions.len()
        )),
    }
    out
}

fn missing(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(", not exercised: {names:?}")
    }
}

/// One divergence as text: file, step, action, differences, replay command.
pub fn divergence_text(reported: &Reported) -> String {
    let d = &reported.divergence;
    let mut out = format!(
        "DIVERGENCE in {} at step {}: {}\n",
        reported.file.display(),
        d.step,
        d.action
    );
    for line in &d.differences {
        out.push_str(&format!("    {line}\n"));
    }
    if let Some(logs) = &d.logs {
        out.push_str(&format!("  node logs: {}\n", logs.display()));
    }
    out.push_str(&format!("  replay it: {}\n", reported.command));
    out
}

/// A counterexample's real consequence as text.
pub fn consequence_text(file: &std::path::Path, c: &Consequence) -> String {
    let mut out = format!("CONSEQUENCE on real nodes of {}:\n", file.display());
    out.push_str(&format!(
        "  acknowledged by the real brokers: {:?}\n",
        c.acked
    ));
    out.push_str(&format!(
        "  `insync consume` (leader per controller: {}) returns (offset, record, epoch): {:?}\n",
        c.leader
            .map_or("none".to_string(), |l| format!("broker {l}")),
        c.consumed
    ));
    for (broker, log) in &c.logs {
        out.push_str(&format!(
            "  broker {broker} log (offset, record, epoch): {log:?}\n"
        ));
    }
    let property = c.property.as_deref().unwrap_or("no_acked_record_lost");
    for line in crate::evidence::text(property, &c.evidence, &c.consumed) {
        out.push_str(&format!("  {line}\n"));
    }
    if c.missing.is_empty() {
        out.push_str("  no acknowledged record is missing\n");
    } else {
        let gone_from = c.leader.map_or("the partition".to_string(), |l| {
            format!("leader broker {l}'s log")
        });
        out.push_str(&format!(
            "  LOST: acknowledged record(s) {:?} are gone from {gone_from}\n",
            c.missing
        ));
    }
    if !c.note.is_empty() {
        out.push_str(&format!("  note: {}\n", c.note));
    }
    out
}

/// The summary as one JSON object.
pub fn json(summary: &Summary) -> Value {
    let covered = &summary.covered;
    json!({
        "traces": summary.traces,
        "steps": summary.steps,
        "seconds": summary.elapsed.as_secs_f64(),
        "traces_per_minute": summary.traces_per_minute(),
        "steps_per_minute": summary.steps_per_minute(),
        "impl_variant": summary.impl_variant,
        "divergences": summary.divergences.iter().map(|r| json!({
            "file": r.file,
            "step": r.divergence.step,
            "action": r.divergence.action,
            "differences": r.divergence.differences,
            "command": r.command,
        })).collect::<Vec<_>>(),
        "coverage": {
            "action_kinds": covered.action_kinds,
            "action_kinds_total": ACTION_KINDS.len(),
            "message_types": covered.message_types,
            "message_types_total": MESSAGE_TYPES.len(),
            "timer_kinds": covered.timer_kinds,
            "timer_kinds_total": TIMER_KINDS.len(),
            "states_covered": covered.states.len(),
            "transitions_covered": covered.transitions.len(),
            "states_reachable": summary.reachable.map(|r| r.states),
            "transitions_reachable": summary.reachable.map(|r| r.transitions),
            "reachable_complete": summary.reachable.map(|r| r.complete),
        },
        "consequences": summary.consequences.iter().map(|(file, c)| json!({
            "file": file,
            "acked": c.acked,
            "leader": c.leader,
            "consumed": c.consumed,
            "missing": c.missing,
            "logs": c.logs,
            "note": c.note,
            "property": c.property,
            "evidence": {
                "leader": c.evidence.leader,
                "leader_hw": c.evidence.leader_hw,
                "isr": c.evidence.isr,
                "logs": c.evidence.logs,
                "committed_missing": c.evidence.committed_missing,
                "isr_disagreeing": c.evidence.isr_disagreeing,
            },
        })).collect::<Vec<_>>(),
    })
}

/// Distinct names in a set, for tests.
pub fn names(set: &BTreeSet<&'static str>) -> Vec<&'static str> {
    set.iter().copied().collect()
}
