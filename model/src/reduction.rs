//! Reductions of the checker's search that lose no behaviour a property can see. Each is
//! argued in docs/reductions.md; this file only carries them out. They are off in the plain
//! model (`InsyncModel::new`), which the conformance harness and the liveness check use, and on
//! in `InsyncModel::reduced`, which `insync check` runs.
//!
//! *Atomic reads.* A client read (`Consume(b)`) changes nothing but the client: the broker
//! answers from its state without changing it, and no other actor reads the client. So the
//! read is taken as one uninterrupted exchange: the client sends only to a broker that is up,
//! the request is delivered at once, and the answer is delivered as soon as it heads its
//! channel. A read that adds nothing to what the client has read leaves the system as it was,
//! so it does not spend the read budget: the state after it is the state before.
//!
//! *Durability chosen at the crash.* What a live broker has saved (`flushed`, `hw_checkpoint`)
//! is read by nothing but its own crash. So the `Flush` and `HwCheckpoint` timers of a live
//! broker never fire; instead the model keeps, per broker, every durable end and every HW
//! checkpoint that some firing times could have left ([`Saveable`]), and right after
//! `Crash(b)` lets `Flush` and `HwCheckpoint` of the crashed b pick among them: `Flush` raises
//! the saved log to the next durable end it could have had, `HwCheckpoint` moves the saved HW to
//! the next possible checkpoint, cyclically. Any other step ends the choice.

use crate::actor::Storage;
use crate::broker::BrokerState;
use crate::client::Request;
use crate::model::{in_flight, Action, InsyncModel, SystemState};
use crate::msg::{ClientReply, ClientRequest, Msg, Timer};
use crate::types::{BrokerId, Offset, RecordId};
use serde::Serialize;
use stateright::actor::{ActorModelAction, Id, Network};

/// Which reductions a model applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reductions {
    /// Reads are one uninterrupted exchange, and a read that adds nothing is not counted.
    pub atomic_reads: bool,
    /// A live broker's durability timers never fire; the crash chooses what was saved.
    pub durability_at_crash: bool,
    /// A produce is delivered at once when no answer for its record can meet it on the way,
    /// and an answer the client will accept is delivered as soon as it heads its channel.
    pub atomic_produces: bool,
}

impl Reductions {
    /// Every reduction on: what `insync check` runs.
    pub fn all() -> Self {
        Reductions {
            atomic_reads: true,
            durability_at_crash: true,
            atomic_produces: true,
        }
    }
}

/// What one broker could have saved by now, as sets of offsets (bit `o` for offset `o`): every
/// durable end of its log (the LEO at some moment since its log last shrank or it started,
/// when a `Flush` could have fired) and every HW checkpoint (the HW at some moment since it
/// started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Saveable {
    pub log_ends: u16,
    pub checkpoints: u16,
}

fn bit(offset: Offset) -> u16 {
    assert!(offset < 16, "offsets fit the sets of `Saveable`");
    1 << offset
}

/// The smallest member of `set` above `offset`, if any.
fn next_above(set: u16, offset: Offset) -> Option<Offset> {
    (offset + 1..16).find(|o| set & bit(*o) != 0)
}

impl Saveable {
    /// A broker that has just started or restarted: what it saved at start, and nothing else.
    fn at_start(broker: &BrokerState) -> Self {
        Saveable {
            log_ends: bit(broker.flushed),
            checkpoints: bit(broker.hw_checkpoint),
        }
    }

    /// After a step of a live broker that went from `before` to `after`.
    fn after_step(self, before: &BrokerState, after: &BrokerState) -> Self {
        // A shrinking log is saved at once (`truncate`): the durable ends start again there.
        let extended = after.log.starts_with(&before.log) && after.flushed == before.flushed;
        let log_ends = if extended {
            self.log_ends
        } else {
            bit(after.flushed)
        };
        Saveable {
            log_ends: log_ends | bit(after.leo()),
            checkpoints: self.checkpoints | bit(after.hw),
        }
    }
}

/// The read the client has in flight, if any: the broker it asked.
fn read_in_flight(model: &InsyncModel, state: &SystemState) -> Option<BrokerId> {
    let client = state.actor_states[model.cfg.client_index()].as_client()?;
    match client.in_flight {
        Some(Request::Consume { broker }) => Some(broker),
        _ => None,
    }
}

/// The message at the head of channel `src -> dst`.
fn head(state: &SystemState, src: Id, dst: Id) -> Option<&Msg> {
    match &state.network {
        Network::Ordered(channels) => channels.get(&(src, dst)).and_then(|q| q.front()),
        _ => unreachable!("the model's network is ordered"),
    }
}

/// The one step a reduction insists on in `state`, if any: the delivery of the read or produce
/// in flight (its request, or its answer once that heads its channel).
pub fn forced_step(model: &InsyncModel, state: &SystemState) -> Option<Action> {
    // A crash being decided comes first (no step is forced then).
    if state.history.crashing.is_some() {
        return None;
    }
    forced_read(model, state).or_else(|| forced_produce(model, state))
}

/// The produce the client has in flight, if any: the broker it asked and the record.
fn produce_in_flight(model: &InsyncModel, state: &SystemState) -> Option<(BrokerId, RecordId)> {
    let client = state.actor_states[model.cfg.client_index()].as_client()?;
    match client.in_flight {
        Some(Request::Produce { broker, record_id }) => Some((broker, record_id)),
        _ => None,
    }
}

/// Whether something could answer record `record` from broker `b` before a new request for it
/// arrives there: an answer for it in flight from b, or a request for it waiting at b.
fn may_be_answered(
    model: &InsyncModel,
    state: &SystemState,
    b: BrokerId,
    record: RecordId,
) -> bool {
    let client = Id::from(model.cfg.client_index());
    let waiting = state.actor_states[usize::from(b.id())]
        .as_broker()
        .and_then(|s| s.leader.as_ref())
        .is_some_and(|l| l.waiting.iter().any(|(r, _)| *r == record));
    waiting || in_flight(state, b.id(), client, |m| answers(m, record))
}

fn answers(msg: &Msg, record: RecordId) -> bool {
    matches!(msg, Msg::Reply(ClientReply::ProduceResponse { record_id, .. }) if *record_id == record)
}

/// Whether `action` (just taken, leading to `next`) sent a produce that nothing can answer on
/// its way to a broker that is up: its delivery is then the next step.
pub fn produce_sent(model: &InsyncModel, action: &Action, next: &SystemState) -> bool {
    let ActorModelAction::Timeout(_, Timer::Produce(b)) = action else {
        return false;
    };
    let Some((_, record)) = produce_in_flight(model, next) else {
        return false;
    };
    model.reductions.atomic_produces
        && !next.crashed[usize::from(b.id())]
        && !may_be_answered(model, next, *b, record)
}

/// Atomic produces: the request just sent, if nothing can answer its record on the way
/// ([`produce_sent`]); else an answer for the record from the broker asked, which the client
/// accepts, once it heads its channel.
fn forced_produce(model: &InsyncModel, state: &SystemState) -> Option<Action> {
    if !model.reductions.atomic_produces {
        return None;
    }
    let (broker, record) = produce_in_flight(model, state)?;
    let client = Id::from(model.cfg.client_index());
    let b = broker.id();
    if state.history.produce_sent {
        let msg = head(state, client, b).expect("the produce just sent heads its channel");
        return Some(ActorModelAction::Deliver {
            src: client,
            dst: b,
            msg: msg.clone(),
        });
    }
    match head(state, b, client) {
        Some(msg) if answers(msg, record) => Some(ActorModelAction::Deliver {
            src: b,
            dst: client,
            msg: msg.clone(),
        }),
        _ => None,
    }
}

/// Atomic reads: the request, then the answer once it heads its channel.
fn forced_read(model: &InsyncModel, state: &SystemState) -> Option<Action> {
    if !model.reductions.atomic_reads {
        return None;
    }
    let broker = read_in_flight(model, state)?;
    let client = Id::from(model.cfg.client_index());
    let (b, index) = (broker.id(), usize::from(broker.id()));
    if let Some(msg @ Msg::Request(ClientRequest::Consume { .. })) = head(state, client, b) {
        return (!state.crashed[index]).then(|| ActorModelAction::Deliver {
            src: client,
            dst: b,
            msg: msg.clone(),
        });
    }
    match head(state, b, client) {
        Some(msg @ Msg::Reply(ClientReply::ConsumeResponse { .. })) => {
            Some(ActorModelAction::Deliver {
                src: b,
                dst: client,
                msg: msg.clone(),
            })
        }
        _ => None,
    }
}

/// Whether a reduction rules `action` out in `state`: a read of a broker that is down (it
/// would only wait for the restart, and the read may as well be sent then).
pub fn ruled_out(model: &InsyncModel, state: &SystemState, action: &Action) -> bool {
    match action {
        ActorModelAction::Timeout(_, Timer::Consume(b)) => {
            model.reductions.atomic_reads && state.crashed[usize::from(b.id())]
        }
        // A produce to a broker that is down waits for the restart; it may as well be sent
        // then, unless an answer for its record can meet it on the way.
        ActorModelAction::Timeout(_, Timer::Produce(b)) => {
            let record = state.actor_states[model.cfg.client_index()]
                .as_client()
                .map_or(0, |c| c.next_record);
            model.reductions.atomic_produces
                && state.crashed[usize::from(b.id())]
                && !may_be_answered(model, state, *b, record)
        }
        _ => durability_deferred(model, state, action),
    }
}

/// Whether the step `last --action--> next` was a read that added nothing to what the client
/// has read: the budget it spent is given back.
pub fn read_added_nothing(
    model: &InsyncModel,
    last: &SystemState,
    action: &Action,
    next: &SystemState,
) -> bool {
    if !model.reductions.atomic_reads {
        return false;
    }
    let ActorModelAction::Deliver {
        src,
        msg: Msg::Reply(ClientReply::ConsumeResponse { .. }),
        ..
    } = action
    else {
        return false;
    };
    let read = |s: &SystemState| {
        s.actor_states[model.cfg.client_index()]
            .as_client()
            .map(|c| c.read.clone())
    };
    read_in_flight(model, last) == Some(BrokerId::from_id(*src)) && read(last) == read(next)
}

/// Whether a reduction rules out a live broker's durability timer: the crash decides instead.
fn durability_deferred(model: &InsyncModel, state: &SystemState, action: &Action) -> bool {
    let ActorModelAction::Timeout(id, Timer::Flush | Timer::HwCheckpoint) = action else {
        return false;
    };
    model.reductions.durability_at_crash && !state.crashed[usize::from(*id)]
}

/// Right after `Crash(b)`: the steps that choose what b had saved, as its `Flush` (a longer
/// durable log) and `HwCheckpoint` (the next possible checkpoint).
pub fn add_crash_choices(state: &SystemState, actions: &mut Vec<Action>) {
    let Some(b) = state.history.crashing else {
        return;
    };
    let index = usize::from(b.id());
    let saveable = saveable_of(state, index);
    let Some(Storage::Broker(storage)) = &state.actor_storages[index] else {
        return;
    };
    if next_above(saveable.log_ends, storage.log.len() as Offset).is_some() {
        actions.push(ActorModelAction::Timeout(b.id(), Timer::Flush));
    }
    if saveable.checkpoints & !bit(storage.hw) != 0 {
        actions.push(ActorModelAction::Timeout(b.id(), Timer::HwCheckpoint));
    }
}

/// The state after a crash choice (`add_crash_choices`), or `None` for any other step.
pub fn crash_choice(
    model: &InsyncModel,
    last: &SystemState,
    action: &Action,
) -> Option<SystemState> {
    let b = last.history.crashing?;
    let ActorModelAction::Timeout(id, timer) = action else {
        return None;
    };
    if *id != b.id() || !model.reductions.durability_at_crash {
        return None;
    }
    let index = usize::from(*id);
    let saveable = saveable_of(last, index);
    let Some(Storage::Broker(storage)) = &last.actor_storages[index] else {
        unreachable!("a crash choice is offered only for a broker with storage");
    };
    let log = &last.actor_states[index].as_broker().expect("a broker").log;
    let mut storage = storage.clone();
    match timer {
        Timer::Flush => {
            let end = next_above(saveable.log_ends, storage.log.len() as Offset)
                .expect("offered only with a longer durable end");
            storage.log = log[..end as usize].to_vec();
        }
        Timer::HwCheckpoint => {
            let lowest = saveable.checkpoints.trailing_zeros() as Offset;
            storage.hw = next_above(saveable.checkpoints, storage.hw).unwrap_or(lowest);
        }
        _ => return None,
    }
    let mut next = last.clone();
    next.actor_storages[index] = Some(Storage::Broker(storage));
    Some(next)
}

/// Keeps [`Saveable`] up to date after a step (and clears the crash choice after any step that
/// is not one): for each live broker from what its step did; for the broker that just crashed,
/// the choice begins. Nothing once the crash budget is spent, when no storage is read again.
pub fn track_saveable(
    model: &InsyncModel,
    last: &SystemState,
    action: &Action,
    next: &mut SystemState,
) {
    if !model.reductions.durability_at_crash {
        return;
    }
    let brokers = model.cfg.brokers as usize;
    next.history.crashing = match action {
        ActorModelAction::Crash(id) => Some(BrokerId::from_id(*id)),
        _ => None,
    };
    let mut saveable = last.history.saveable.clone();
    saveable.resize(brokers + 1, Saveable::default());
    let spent = next.history.budget.crashes >= model.cfg.crashes;
    for (index, entry) in saveable.iter_mut().enumerate().skip(1) {
        // Only the broker whose crash is being decided still needs its sets once it is down;
        // with no crash left, nobody does.
        if next.crashed[index] || spent {
            if next.history.crashing != Some(BrokerId(index as u8)) {
                *entry = Saveable::default();
            }
            continue;
        }
        let after = next.actor_states[index].as_broker().expect("a broker");
        let restarted = last.crashed[index] || *entry == Saveable::default();
        *entry = if restarted {
            Saveable::at_start(after).after_step(after, after)
        } else {
            let before = last.actor_states[index].as_broker().expect("a broker");
            entry.after_step(before, after)
        };
    }
    if saveable.iter().all(|e| *e == Saveable::default()) {
        saveable.clear();
    }
    next.history.saveable = saveable;
}

/// Broker `index`'s sets (empty when none are kept).
fn saveable_of(state: &SystemState, index: usize) -> Saveable {
    state
        .history
        .saveable
        .get(index)
        .copied()
        .unwrap_or_default()
}
