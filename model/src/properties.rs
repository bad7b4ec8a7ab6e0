//! The properties checked on every reachable state, named as in overview §2.
//!
//! What each invariant judges (docs/invariants.md has the table):
//! - *against history*: `no_acked_record_lost`, `no_acks1_record_lost`, `leader_completeness`,
//!   `view_agreement` (its second half), `acked_record_durable` and `consistent_read` compare
//!   the current state with what the path has done: every record ever committed and every
//!   acknowledgement ever accepted ([`Ghost`], kept by the model's transition wrapper and read
//!   only here) and every record the client ever read (its own `read`, which only grows). So a
//!   record whose every copy was truncated is still owed;
//! - *on the current state*: `strong_isr`, `log_matching`, `one_leader_per_epoch` and the
//!   ordering half of `view_agreement` relate states that coexist, so there is nothing for
//!   them to forget.
//!
//! The leader that matters is the controller's current leader once it acts as leader in the
//! current leader epoch; with none, the leader-based invariants hold vacuously (which is why
//! `acked_record_durable` exists). Brokers that are down, or restarted and not yet
//! registered, are left out of ISR judgements: the controller cannot know yet that they lost
//! data.

use crate::actor::State;
use crate::broker::BrokerState;
use crate::controller::ControllerState;
use crate::ghost::Ghost;
use crate::model::{in_flight, InsyncModel, SystemState};
use crate::msg::{AlterPartitionResult, ClientReply, Msg, PeerMsg, ProduceResult};
use crate::types::{BrokerId, Epoch, Offset, Record, RecordId};
use stateright::actor::Id;
use stateright::{Expectation, Property};

/// Every invariant (`always`) followed by every witness (`sometimes`).
pub fn all() -> Vec<Property<InsyncModel>> {
    vec![
        Property::always("no_acked_record_lost", no_acked_record_lost),
        Property::always("no_acks1_record_lost", no_acks1_record_lost),
        Property::always("leader_completeness", leader_completeness),
        Property::always("strong_isr", strong_isr),
        Property::always("log_matching", log_matching),
        Property::always("consistent_read", consistent_read),
        Property::always("one_leader_per_epoch", one_leader_per_epoch),
        Property::always("view_agreement", view_agreement),
        Property::always("acked_record_durable", acked_record_durable),
        Property::sometimes("record_committed", record_committed),
        Property::sometimes("isr_shrink", isr_shrink),
        Property::sometimes("isr_expansion", isr_expansion),
        Property::sometimes("leader_change", leader_change),
        Property::sometimes("divergent_truncation", divergent_truncation),
        Property::sometimes("crash_rejoin", crash_rejoin),
        Property::sometimes("not_enough_replicas", not_enough_replicas),
    ]
}

/// The names of every property, invariants first.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}

/// Whether `name` is an invariant (`always`) rather than a witness.
pub fn is_invariant(name: &str) -> bool {
    all()
        .iter()
        .any(|p| p.name == name && p.expectation == Expectation::Always)
}

fn controller(state: &SystemState) -> &ControllerState {
    state.actor_states[0]
        .as_controller()
        .expect("actor 0 is the controller")
}

/// Live brokers: `(id, state)` of every broker that is not crashed.
fn live_brokers<'a>(
    model: &InsyncModel,
    state: &'a SystemState,
) -> impl Iterator<Item = (BrokerId, &'a BrokerState)> + 'a {
    let brokers = model.cfg.brokers as usize;
    state.actor_states[1..=brokers]
        .iter()
        .enumerate()
        .filter(move |(i, _)| !state.crashed[i + 1])
        .map(|(i, s)| match &**s {
            State::Broker(b) => (BrokerId(i as u8 + 1), b),
            _ => unreachable!("indices 1..=N are brokers"),
        })
}

/// The controller's current leader, if it is live and acts as leader in the current epoch.
fn acting_leader<'a>(model: &InsyncModel, state: &'a SystemState) -> Option<&'a BrokerState> {
    let view = controller(state).view;
    let leader = view.leader?;
    live_brokers(model, state)
        .find(|(b, s)| {
            *b == leader
                && s.is_leader()
                && s.view.is_some_and(|v| v.leader_epoch == view.leader_epoch)
        })
        .map(|(_, s)| s)
}

fn ghost(state: &SystemState) -> &Ghost {
    &state.history.ghost
}

/// Committed records: every `(offset, record)` that was ever below the HW of a live broker.
fn committed(state: &SystemState) -> &[(Offset, Record)] {
    &ghost(state).committed
}

fn holds(log: &[Record], offset: Offset, record: Record) -> bool {
    log.get(offset as usize) == Some(&record)
}

/// Every acknowledgement in `acked` names a record the current leader holds at that offset.
fn leader_holds_acknowledged(
    model: &InsyncModel,
    state: &SystemState,
    acked: &[(RecordId, Offset)],
) -> bool {
    let Some(leader) = acting_leader(model, state) else {
        return true;
    };
    acked.iter().all(|(id, offset)| {
        leader
            .log
            .get(*offset as usize)
            .is_some_and(|r| r.record_id == *id)
    })
}

/// Every record ever acknowledged with `acks=all` is in the current leader's log, at the
/// offset it was acknowledged at.
fn no_acked_record_lost(model: &InsyncModel, state: &SystemState) -> bool {
    leader_holds_acknowledged(model, state, &ghost(state).acked_all)
}

/// The same promise for `acks=1` acknowledgements, which Kafka does not make: the leader
/// answers on its own append, so a failover before the followers fetch loses the record.
/// Vacuous under `acks=all`; `insync check --acks 1` reports it violated (`acks-1-loss`).
fn no_acks1_record_lost(model: &InsyncModel, state: &SystemState) -> bool {
    leader_holds_acknowledged(model, state, &ghost(state).acked_one)
}

/// The current leader, once it acts as leader, holds every committed record at its offset.
fn leader_completeness(model: &InsyncModel, state: &SystemState) -> bool {
    let Some(leader) = acting_leader(model, state) else {
        return true;
    };
    committed(state)
        .iter()
        .all(|(o, r)| holds(&leader.log, *o, *r))
}

/// Members of the ISR the controller could know about (live and registered).
fn known_isr<'a>(
    model: &InsyncModel,
    state: &'a SystemState,
) -> impl Iterator<Item = (BrokerId, &'a BrokerState)> + 'a {
    let isr = controller(state).view.isr;
    live_brokers(model, state).filter(move |(b, s)| isr.contains(*b) && s.registered)
}

/// Every ISR member agrees with the current leader on every offset below the leader's HW.
fn strong_isr(model: &InsyncModel, state: &SystemState) -> bool {
    let Some(leader) = acting_leader(model, state) else {
        return true;
    };
    let hw = leader.hw as usize;
    known_isr(model, state).all(|(_, s)| s.log.len() >= hw && s.log[..hw] == leader.log[..hw])
}

/// Two logs holding a record of the same epoch at the same offset agree on everything before.
fn log_matching(model: &InsyncModel, state: &SystemState) -> bool {
    let logs: Vec<&[Record]> = live_brokers(model, state)
        .map(|(_, s)| &s.log[..])
        .collect();
    logs.iter().enumerate().all(|(i, a)| {
        logs[i + 1..].iter().all(|b| {
            let last_match = (0..a.len().min(b.len()))
                .rev()
                .find(|o| a[*o].leader_epoch == b[*o].leader_epoch);
            last_match.is_none_or(|o| a[..=o] == b[..=o])
        })
    })
}

fn client<'a>(model: &InsyncModel, state: &'a SystemState) -> &'a crate::client::ClientState {
    state.actor_states[model.cfg.client_index()]
        .as_client()
        .expect("the last actor is the client")
}

/// A record the client has read is still in the current leader's log at the offset it was read.
fn consistent_read(model: &InsyncModel, state: &SystemState) -> bool {
    let Some(leader) = acting_leader(model, state) else {
        return true;
    };
    client(model, state).read.iter().all(|(o, id)| {
        leader
            .log
            .get(*o as usize)
            .is_some_and(|r| r.record_id == *id)
    })
}

/// No two live brokers act as leader in the same leader epoch.
fn one_leader_per_epoch(model: &InsyncModel, state: &SystemState) -> bool {
    let epochs: Vec<Epoch> = live_brokers(model, state)
        .filter(|(_, s)| s.is_leader())
        .filter_map(|(_, s)| s.view.map(|v| v.leader_epoch))
        .collect();
    epochs
        .iter()
        .enumerate()
        .all(|(i, e)| !epochs[i + 1..].contains(e))
}

/// Virtual synchrony: views are totally ordered (one view per `partition_epoch`, leader epochs
/// never decrease along it, no broker ahead of the controller), and every record ever committed
/// is in the log of every member of the current view's ISR.
fn view_agreement(model: &InsyncModel, state: &SystemState) -> bool {
    let current = controller(state).view;
    let mut views: Vec<_> = live_brokers(model, state)
        .filter_map(|(_, s)| s.view)
        .collect();
    views.push(current);
    let ordered = views.iter().all(|a| {
        a.partition_epoch <= current.partition_epoch
            && views.iter().all(|b| {
                (a.partition_epoch != b.partition_epoch || a == b)
                    && (a.partition_epoch >= b.partition_epoch || a.leader_epoch <= b.leader_epoch)
            })
    });
    let committed = committed(state);
    ordered
        && known_isr(model, state)
            .all(|(_, s)| committed.iter().all(|(o, r)| holds(&s.log, *o, *r)))
}

/// Every record ever acknowledged with `acks=all` is held by at least one broker: in its log if
/// it is up, in its durable storage if it is down.
///
/// `no_acked_record_lost` speaks only about the leader of the current view, so it holds
/// vacuously when there is none: with `min_insync_replicas = 1` and `fsync = lazy`, a leader
/// alone in the ISR acknowledges a record, crashes and loses it; in `kip-966` its
/// registration then takes it out of the ISR and, nobody else being eligible, the partition
/// stays offline. No later leader exists to miss the record, yet it is on no broker at all.
/// This invariant sees that loss. It is the weakest form of Kafka's promise ("a committed
/// message will not be lost as long as one in-sync replica that holds it survives"): when it
/// fails, no election rule, clean or unclean, can bring the record back.
fn acked_record_durable(model: &InsyncModel, state: &SystemState) -> bool {
    let brokers = 1..=model.cfg.brokers as usize;
    let held = |id: RecordId| {
        brokers.clone().any(|i| {
            let log: &[Record] = if state.crashed[i] {
                match &state.actor_storages[i] {
                    Some(crate::actor::Storage::Broker(s)) => &s.log,
                    None => &[],
                }
            } else {
                &state.actor_states[i]
                    .as_broker()
                    .expect("indices 1..=N are brokers")
                    .log
            };
            log.iter().any(|r| r.record_id == id)
        })
    };
    ghost(state).acked_all.iter().all(|(id, _)| held(*id))
}

/// Witness: some record is committed.
fn record_committed(_model: &InsyncModel, state: &SystemState) -> bool {
    !committed(state).is_empty()
}

/// Whether the controller has accepted a leader's `AlterPartition` whose ISR compares with the
/// leader's installed one as `accepted`: the `Ok` answer is on its way to the live leader that
/// proposed it. (The model sends `AlterPartition` for a `Lag` shrink and for an expansion only,
/// and an accepted proposal is always answered, so this sees every accepted change.)
fn alter_partition_accepted(
    model: &InsyncModel,
    state: &SystemState,
    accepted: fn(usize, usize) -> bool,
) -> bool {
    live_brokers(model, state).any(|(b, s)| {
        let (Some(leader), Some(view)) = (&s.leader, s.view) else {
            return false;
        };
        in_flight(state, Id::from(0), b.id(), |m| match m {
            Msg::Peer(PeerMsg::AlterPartitionResponse {
                result: AlterPartitionResult::Ok(new),
            }) => {
                leader.pending_isr == Some(new.isr)
                    && new.partition_epoch > view.partition_epoch
                    && accepted(new.isr.len(), view.isr.len())
            }
            _ => false,
        })
    })
}

/// Witness: the controller accepted a leader's ISR shrink (a `Lag(f)` firing), not merely an
/// expiry or a restart removing a member.
fn isr_shrink(model: &InsyncModel, state: &SystemState) -> bool {
    alter_partition_accepted(model, state, |new, old| new < old)
}

/// Witness: the controller accepted a leader's ISR expansion.
fn isr_expansion(model: &InsyncModel, state: &SystemState) -> bool {
    alter_partition_accepted(model, state, |new, old| new > old)
}

/// Witness: a broker other than the first leader's epoch leads and acts as leader.
fn leader_change(model: &InsyncModel, state: &SystemState) -> bool {
    controller(state).view.leader_epoch > 1 && acting_leader(model, state).is_some()
}

/// Witness: a follower removed records from its log on its leader's word (a `DivergingEpoch`,
/// an `OffsetOutOfRange`, an epoch lookup, or in `hw-truncation` a new leader). Read from the
/// ghost counter `Ghost::truncations`, which the model's transition wrapper bumps on such a step.
fn divergent_truncation(_model: &InsyncModel, state: &SystemState) -> bool {
    ghost(state).truncations > 0
}

/// Witness: a broker that crashed and restarted is back in the ISR after its registration
/// (which, in `kip-966`, always removes it).
fn crash_rejoin(model: &InsyncModel, state: &SystemState) -> bool {
    let isr = controller(state).view.isr;
    live_brokers(model, state).any(|(b, s)| {
        s.broker_epoch > 0
            && s.registered
            && isr.contains(b)
            && s.view.is_some_and(|v| v.isr.contains(b))
    })
}

/// Witness: a leader refused a produce with `NotEnoughReplicas`.
fn not_enough_replicas(model: &InsyncModel, state: &SystemState) -> bool {
    let client = Id::from(model.cfg.client_index());
    (1..=model.cfg.brokers).any(|b| {
        in_flight(state, BrokerId(b).id(), client, |m| {
            matches!(
                m,
                Msg::Reply(ClientReply::ProduceResponse {
                    result: ProduceResult::NotEnoughReplicas,
                    ..
                })
            )
        })
    })
}
