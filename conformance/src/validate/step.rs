//! Stepping the model's actor of a node along that node's events, and judging each one.
//!
//! The model is driven actor by actor (validation-notes "One order is enough"): an event of
//! node n is a step of actor n only, so the model's network is not simulated; the merge
//! (`merge`) already showed that every receive follows a send that carried it. Budgets do not
//! exist at this level: actors have no fault counters (those live in `InsyncModel`), so no
//! rule refuses a real crash, expiry or shrink for budget reasons.
//!
//! One event may have more than one model reading (`Candidate`); the first that explains the
//! event is taken, and when none does the differences of the first are reported.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use insync_impl::protocol::{self as imp, NodeId, RecordId};
use insync_impl::trace_log::{Event, Input, LogWrite, NodeState, TracedMessage};
use insync_model::actor::{InsyncActor, State, Storage};
use insync_model::broker::Broker;
use insync_model::client::Client;
use insync_model::controller::Controller;
use insync_model::msg::{Msg, Timer};
use insync_model::types::{BrokerId, Record};
use insync_model::Config;
use stateright::actor::{Actor, Command, Id};

use super::rename::{Renaming, TooManyRecords};
use crate::mapping::{self, MappingError};
use crate::router::Frame;

mod judge;
mod unrecorded;

type Out = stateright::actor::Out<InsyncActor>;
/// A node's log as its writes left it, its records renamed into the model's (renamed once,
/// when written, so an event costs what it wrote, not the log's length).
type RealLog = Vec<Record>;

/// What became of one event.
#[derive(Debug)]
pub enum Outcome {
    Explained,
    /// No model step explains it: one line per difference, the model's side first.
    Refused(Vec<String>),
    /// The event is outside what the model can say (a bound, a batch, a gap): undecided.
    OutOfScope(String),
}

/// A model reading of one event.
#[derive(Clone, Debug)]
enum Candidate {
    Start,
    /// Messages delivered in turn: one, or a produce batch's single-record produces.
    Deliver(Id, Vec<Msg>),
    Fire(Timer),
    /// No model step: an implementation-only input (its heartbeat clock, a heartbeat that
    /// changes nothing). The state must not move; only retransmissions may be sent.
    Stutter,
    /// The clean stop: the broker flushes and checkpoints as if both timers fired.
    CleanStop,
    /// A restart of the controller, which the model's controller never does: its whole state
    /// is durable (written before any message of a step leaves, impl `core::controller`), so
    /// it comes back in the state it had, with the timers that state arms.
    ControllerRestart,
    /// The same, but in the state the restarted node recorded: the state it persisted in the
    /// unrecorded last moments before a SIGKILL (not checked, and noted).
    ControllerRecovered,
}

/// One actor's model side.
#[derive(Clone, Debug, Default)]
struct ActorRun {
    state: Option<State>,
    timers: BTreeSet<Timer>,
    storage: Option<Storage>,
    /// Whether it ever started (a second start is a restart).
    started: bool,
    /// The state it had when it stopped cleanly (the controller's is durable).
    stopped: Option<State>,
}

/// The model along the run, and the real logs rebuilt from the writes.
pub struct ModelRun {
    cfg: Config,
    actors: Vec<InsyncActor>,
    runs: Vec<ActorRun>,
    logs: BTreeMap<NodeId, RealLog>,
    renaming: Renaming,
    /// For the event being judged: whether its writes changed the node's log, and whether
    /// the model's step changed the actor's state. When neither did, the two logs are as
    /// equal as they were after the node's previous event (`judge::compare_state`).
    real_log_moved: bool,
    model_moved: bool,
    pub notes: Vec<String>,
}

fn out_of_scope(error: MappingError) -> Outcome {
    Outcome::OutOfScope(format!("outside the model's vocabulary or bounds: {error}"))
}

fn too_many(_: TooManyRecords) -> Outcome {
    Outcome::OutOfScope(format!(
        "more than {} distinct records: the model's record ids are u8",
        super::rename::RECORDS_MAX
    ))
}

impl ModelRun {
    pub fn new(cfg: Config) -> Self {
        let mut actors = vec![InsyncActor::Controller(Controller { cfg })];
        actors.extend((1..=cfg.brokers).map(|b| {
            InsyncActor::Broker(Broker {
                id: BrokerId(b),
                cfg,
            })
        }));
        actors.push(InsyncActor::Client(Client { cfg }));
        let runs = vec![ActorRun::default(); actors.len()];
        ModelRun {
            cfg,
            actors,
            runs,
            logs: BTreeMap::new(),
            renaming: Renaming::default(),
            real_log_moved: true,
            model_moved: true,
            notes: Vec::new(),
        }
    }

    fn actor_of(&self, node: NodeId) -> Result<Id, MappingError> {
        match node {
            NodeId::Client(_) => Ok(Id::from(self.cfg.client_index())),
            other => mapping::actor_of_node(&self.cfg, other),
        }
    }

    /// Judges one event of `node`, and moves the model on when it is explained.
    pub fn event(&mut self, node: NodeId, name: &str, event: &Event) -> Outcome {
        let actor = match self.actor_of(node) {
            Ok(actor) => actor,
            Err(error) => return out_of_scope(error),
        };
        if let Err(outcome) = self.rebuild_log(node, event) {
            return outcome;
        }
        let candidates = match self.candidates(actor, event) {
            Ok(candidates) => candidates,
            Err(outcome) => return outcome,
        };
        let mut first_refusal = None;
        // One reading (every broker event): tried on the actor's own model side, no copy of
        // its log; a refusal ends validation anyway. More: each on a copy.
        let single = candidates.len() == 1;
        for candidate in candidates {
            let run = match single {
                true => std::mem::take(&mut self.runs[usize::from(actor)]),
                false => self.runs[usize::from(actor)].clone(),
            };
            match self.attempt(node, actor, name, &candidate, event, run) {
                Ok(run) => {
                    if let Candidate::ControllerRecovered = candidate {
                        self.notes.push(format!(
                            "{name} event {}: restarted in a state its log had not reached \
                             (persisted in the unrecorded last moments before a crash; taken \
                             as recorded, not checked)",
                            event.index
                        ));
                    }
                    self.runs[usize::from(actor)] = run;
                    return Outcome::Explained;
                }
                Err(Outcome::Refused(lines)) => {
                    first_refusal.get_or_insert(lines);
                }
                Err(other) => return other,
            }
        }
        Outcome::Refused(first_refusal.unwrap_or_default())
    }

    /// Applies the event's writes to the node's rebuilt log (a start takes the log recovery
    /// found) and checks it against the log end offset the storage reported.
    fn rebuild_log(&mut self, node: NodeId, event: &Event) -> Result<(), Outcome> {
        let Some(NodeState::Broker(snapshot)) = &event.state else {
            return Ok(());
        };
        let renaming = &mut self.renaming;
        let mut renamed = |records: &[(u64, u32, RecordId)]| -> Result<RealLog, Outcome> {
            records
                .iter()
                .map(|(_, epoch, id)| {
                    let id = renaming.id(*id).map_err(too_many)?;
                    Ok(Record {
                        leader_epoch: *epoch,
                        record_id: id.sequence,
                    })
                })
                .collect()
        };
        self.real_log_moved = matches!(event.input, Input::Start(_))
            || event
                .writes
                .iter()
                .any(|write| matches!(write, LogWrite::Append(_) | LogWrite::TruncateTo(_)));
        if let Input::Start(_) = event.input {
            // The state after a start is after its writes, and carries the whole log.
            let recovered = renamed(&snapshot.log)?;
            self.logs.insert(node, recovered);
        } else {
            for write in &event.writes {
                match write {
                    LogWrite::Append(records) => {
                        let records = renamed(records)?;
                        self.logs.entry(node).or_default().extend(records);
                    }
                    LogWrite::TruncateTo(offset) => self
                        .logs
                        .entry(node)
                        .or_default()
                        .truncate(*offset as usize),
                    LogWrite::Flush | LogWrite::CheckpointHighWatermark(_) => {}
                }
            }
        }
        let log = self.logs.entry(node).or_default();
        if log.len() as u64 != snapshot.log_end_offset {
            return Err(Outcome::Refused(vec![format!(
                "the recorded writes leave a log of {} records, the storage reports a log end \
                 offset of {}",
                log.len(),
                snapshot.log_end_offset
            )]));
        }
        Ok(())
    }
}

impl ModelRun {
    /// The model readings of an event, most direct first.
    fn candidates(&mut self, actor: Id, event: &Event) -> Result<Vec<Candidate>, Outcome> {
        let run = &self.runs[usize::from(actor)];
        Ok(match &event.input {
            // After a clean stop nothing went unrecorded: only the state it had.
            Input::Start(_) if run.started && usize::from(actor) == 0 => match run.stopped {
                Some(_) => vec![Candidate::ControllerRestart],
                None => vec![Candidate::ControllerRestart, Candidate::ControllerRecovered],
            },
            Input::Start(_) => vec![Candidate::Start],
            Input::Message { from, message, .. } => {
                let src = self.actor_of(*from).map_err(out_of_scope)?;
                if let TracedMessage::Peer(imp::PeerMessage::Heartbeat { .. }) = message {
                    // A heartbeat from a fenced broker is the controller's `Heartbeat(b)`;
                    // from any other it moves no model state (protocol.md §4.10).
                    let b = mapping::broker_from_impl(match from {
                        NodeId::Broker(b) => *b,
                        _ => {
                            return Err(Outcome::Refused(vec![
                                "a heartbeat from a non-broker".into()
                            ]))
                        }
                    })
                    .map_err(out_of_scope)?;
                    let mut candidates = Vec::new();
                    if run.timers.contains(&Timer::Heartbeat(b)) {
                        candidates.push(Candidate::Fire(Timer::Heartbeat(b)));
                    }
                    candidates.push(Candidate::Stutter);
                    return Ok(candidates);
                }
                if judge::refused_by_the_implementation_only(event) {
                    // Nothing appended, nothing changed: the model's state must not move.
                    return Ok(vec![Candidate::Stutter]);
                }
                let frames = match message {
                    TracedMessage::Request(request) => self.renaming.produce_batch(request),
                    other => self.renaming.message(other).map(|frame| vec![frame]),
                };
                let msgs = frames
                    .map_err(too_many)?
                    .iter()
                    .map(|frame| mapping::msg_from_impl(frame, first_offset(frame)))
                    .collect::<Result<Vec<Msg>, MappingError>>()
                    .map_err(out_of_scope)?;
                vec![Candidate::Deliver(src, msgs)]
            }
            Input::Timer(timer) => match mapping::timer_from_impl(timer).map_err(out_of_scope)? {
                Some(timer) if run.timers.contains(&timer) => vec![Candidate::Fire(timer)],
                Some(timer) => {
                    return Err(Outcome::Refused(vec![format!(
                        "{timer:?} fired, but the model has it not armed (armed: {:?})",
                        run.timers
                    )]))
                }
                None => vec![Candidate::Stutter],
            },
            Input::Stop => vec![Candidate::CleanStop],
            Input::Gap { lost } => {
                return Err(Outcome::OutOfScope(format!(
                    "the node's log lost {lost} record(s) here (its writer's queue was full)"
                )))
            }
            Input::Full { bytes } => {
                return Err(Outcome::OutOfScope(format!(
                    "the node's log reached its bound ({bytes} bytes) and stopped here"
                )))
            }
        })
    }

    /// Runs one candidate on a copy of the actor's model side and compares it with the
    /// event; the copy is the new model side when it matches.
    fn attempt(
        &mut self,
        node: NodeId,
        actor: Id,
        name: &str,
        candidate: &Candidate,
        event: &Event,
        mut run: ActorRun,
    ) -> Result<ActorRun, Outcome> {
        let mut out = Out::new();
        self.run_candidate(actor, &mut run, candidate, event, &mut out)?;
        let mut sent: BTreeMap<Id, Vec<Msg>> = BTreeMap::new();
        for command in out {
            match command {
                Command::Send(dst, msg) => sent.entry(dst).or_default().push(msg),
                Command::SetTimer(timer, _) => {
                    run.timers.insert(timer);
                }
                Command::CancelTimer(timer) => {
                    run.timers.remove(&timer);
                }
                Command::Save(storage) => run.storage = Some(storage),
                Command::ChooseRandom(..) => {}
            }
        }
        if let (Candidate::Deliver(_, msgs), Some(State::Broker(after))) = (candidate, &run.state) {
            if msgs.len() > 1 {
                judge::answer_parked_after_the_batch(&mut sent, after);
            }
        }
        let mut lines = self.compare_sent(name, &run, candidate, &sent, event)?;
        lines.extend(self.compare_state(node, name, &mut run, event)?);
        if lines.is_empty() {
            if matches!(candidate, Candidate::CleanStop) {
                run.stopped = run.state.take();
                run.timers.clear();
            }
            return Ok(run);
        }
        Err(Outcome::Refused(lines))
    }

    fn run_candidate(
        &mut self,
        actor: Id,
        run: &mut ActorRun,
        candidate: &Candidate,
        event: &Event,
        out: &mut Out,
    ) -> Result<(), Outcome> {
        let storage = match candidate {
            Candidate::Start => self.restart_storage(actor, run, event)?,
            _ => None,
        };
        // Whether the model's state (so its log) may have moved; a step that leaves it
        // where it was says so through the copy-on-write (`stepped`).
        self.model_moved = !matches!(candidate, Candidate::Stutter);
        let model = &self.actors[usize::from(actor)];
        match candidate {
            Candidate::Start => {
                run.timers.clear();
                run.state = Some(model.on_start(actor, &storage, out));
                run.started = true;
            }
            Candidate::Deliver(src, msgs) => {
                let state = run.state.take().ok_or_else(|| down(actor))?;
                let mut cow = Cow::Borrowed(&state);
                for msg in msgs {
                    model.on_msg(actor, &mut cow, *src, msg.clone(), out);
                }
                let owned = match cow {
                    Cow::Owned(next) => Some(next),
                    Cow::Borrowed(_) => None,
                };
                run.state = Some(self.stepped(owned, state));
            }
            Candidate::Fire(timer) => {
                let state = run.state.take().ok_or_else(|| down(actor))?;
                let mut cow = Cow::Borrowed(&state);
                run.timers.remove(timer);
                model.on_timeout(actor, &mut cow, timer, out);
                let owned = match cow {
                    Cow::Owned(next) => Some(next),
                    Cow::Borrowed(_) => None,
                };
                run.state = Some(self.stepped(owned, state));
            }
            Candidate::Stutter => {}
            Candidate::ControllerRestart | Candidate::ControllerRecovered => {
                self.restart_controller(run, candidate, event, out)?;
            }
            Candidate::CleanStop => {
                for timer in [Timer::Flush, Timer::HwCheckpoint] {
                    if !run.timers.contains(&timer) {
                        continue;
                    }
                    let state = run.state.as_ref().ok_or_else(|| down(actor))?;
                    let mut cow = Cow::Borrowed(state);
                    run.timers.remove(&timer);
                    model.on_timeout(actor, &mut cow, &timer, out);
                    run.state = Some(cow.into_owned());
                }
            }
        }
        Ok(())
    }
}

impl ModelRun {
    /// The controller back from a restart: its durable state (the model's, or the one it
    /// recorded), and every timer that state arms (`Controller::sync_timers` from nothing).
    fn restart_controller(
        &self,
        run: &mut ActorRun,
        candidate: &Candidate,
        event: &Event,
        out: &mut Out,
    ) -> Result<(), Outcome> {
        let state = match (candidate, &event.state) {
            (Candidate::ControllerRecovered, Some(NodeState::Controller(snapshot))) => {
                crate::abstraction::controller(snapshot).map_err(out_of_scope)?
            }
            _ => match run.state.as_ref().or(run.stopped.as_ref()) {
                Some(State::Controller(state)) => state.clone(),
                _ => return Err(down(Id::from(0))),
            },
        };
        run.timers.clear();
        run.stopped = None;
        Controller { cfg: self.cfg }.sync_timers(None, &state, out);
        run.state = Some(State::Controller(state));
        Ok(())
    }
}

impl ModelRun {
    /// The state after a model step: the copy-on-write's new state if the step changed it
    /// (`InsyncActor::apply` keeps a changed copy only), else the one it started from.
    fn stepped(&mut self, owned: Option<State>, before: State) -> State {
        self.model_moved = owned.is_some();
        owned.unwrap_or(before)
    }
}

fn down(actor: Id) -> Outcome {
    Outcome::Refused(vec![format!(
        "actor {} handles an input while the model has it down",
        usize::from(actor)
    )])
}

/// Where a message's records start: a `FetchResponse` echoes the offset it answers.
fn first_offset(frame: &Frame) -> Option<u64> {
    match frame {
        Frame::Peer(imp::PeerMessage::FetchResponse { fetch_offset, .. }) => Some(*fetch_offset),
        _ => None,
    }
}
