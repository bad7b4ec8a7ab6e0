//! The abstraction function: one pure function per actor kind, from a node's `Inspect`
//! snapshot to the model's state of that actor (conformance-notes "The abstraction function").
//!
//! Fields the model lacks are dropped here and nowhere else: byte offsets, payloads, producer
//! ids (checked to be the harness's, then reduced to the model's record id), the broker's own
//! id and its redundant `log_end_offset` (both checked for consistency, then dropped), and
//! armed timers (compared separately, against the model's timer set of that actor, by
//! `armed_timers`). Every field the model has is filled from the snapshot, KIP-903's
//! `broker_epoch`, `registered` and `broker_epochs` included since the implementation holds
//! them (DIVERGENCES.md D1, closed), so the harness keeps no record of its own about a broker.

use std::collections::BTreeSet;

use insync_impl::protocol as imp;
use insync_model::broker::{BrokerState, FetchState, LeaderState, ReplicaProgress};
use insync_model::controller::ControllerState;
use insync_model::msg::Timer;
use insync_model::types::{BrokerId, Epoch, Record};

use crate::mapping::{self, MappingError};

/// The controller's abstract state. Timers are compared by [`armed_timers`].
pub fn controller(snapshot: &imp::ControllerSnapshot) -> Result<ControllerState, MappingError> {
    Ok(ControllerState {
        view: mapping::view_from_impl(&snapshot.view)?,
        fenced: mapping::broker_set_from_impl(&snapshot.fenced)?,
        elr: mapping::broker_set_from_impl(&snapshot.elr)?,
        last_known_leader: snapshot
            .last_known_leader
            .map(mapping::broker_from_impl)
            .transpose()?,
        broker_epochs: snapshot
            .broker_epochs
            .iter()
            .map(|(b, e)| {
                let epoch = small("broker_epoch", u64::from(*e))?;
                Ok((mapping::broker_from_impl(*b)?, epoch))
            })
            .collect::<Result<_, MappingError>>()?,
        // The model's record of an election's other candidates lasts within a step only.
        choice: None,
    })
}

/// A broker's abstract state.
pub fn broker(snapshot: &imp::BrokerSnapshot) -> Result<BrokerState, MappingError> {
    let log = log(snapshot)?;
    if snapshot.log_end_offset != log.len() as u64 {
        return Err(inconsistent(
            snapshot,
            "log_end_offset is not the log's length",
        ));
    }
    let leader = match snapshot.leader_epoch_start_offset {
        Some(start) => Some(LeaderState {
            leader_epoch_start_offset: small("leader_epoch_start_offset", start)?,
            replicas: snapshot
                .replicas
                .iter()
                .map(|(b, p)| Ok((mapping::broker_from_impl(*b)?, replica(p)?)))
                .collect::<Result<_, MappingError>>()?,
            pending_isr: snapshot
                .pending_isr
                .as_ref()
                .map(mapping::broker_set_from_impl)
                .transpose()?,
            waiting: snapshot
                .waiting
                .iter()
                .map(|(id, offset)| {
                    Ok((mapping::record_id_from_impl(id)?, small("offset", *offset)?))
                })
                .collect::<Result<_, MappingError>>()?,
        }),
        None => {
            let leader_only = !snapshot.replicas.is_empty()
                || snapshot.pending_isr.is_some()
                || !snapshot.waiting.is_empty();
            if leader_only {
                return Err(inconsistent(snapshot, "leader fields set on a non-leader"));
            }
            None
        }
    };
    Ok(BrokerState {
        broker_epoch: small("broker_epoch", u64::from(snapshot.broker_epoch))?,
        registered: snapshot.registered,
        view: snapshot
            .view
            .as_ref()
            .map(mapping::view_from_impl)
            .transpose()?,
        log,
        hw: small("hw", snapshot.hw)?,
        flushed: small("durable_end_offset", snapshot.durable_end_offset)?,
        hw_checkpoint: small("hw_checkpoint", snapshot.hw_checkpoint)?,
        leader,
        fetch_state: fetch_state(snapshot.fetch_state),
    })
}

/// The neutral value of a parked fetch's leader epoch (see `erase_broker`).
pub const PARKED_EPOCH_ERASED: Epoch = 0;

/// The model's broker state with the detail the implementation's snapshot lacks set to a
/// neutral value: the leader epoch of a parked fetch (the model's `parked: Option<Epoch>`;
/// the snapshot's `parked: bool`, DIVERGENCES.md D6). Whether a fetch is parked is still
/// compared, and the epoch its answer echoes is compared on the wire.
pub fn erase_broker(state: &BrokerState) -> BrokerState {
    let mut state = state.clone();
    if let Some(leader) = &mut state.leader {
        for progress in leader.replicas.values_mut() {
            progress.parked = progress.parked.map(|_| PARKED_EPOCH_ERASED);
        }
    }
    state
}

/// The node's armed timers in the model's names, to compare with the model's timer set.
pub fn armed_timers(timers: &BTreeSet<imp::Timer>) -> Result<BTreeSet<Timer>, MappingError> {
    let mapped: Result<Vec<Option<Timer>>, MappingError> =
        timers.iter().map(mapping::timer_from_impl).collect();
    Ok(mapped?.into_iter().flatten().collect())
}

fn log(snapshot: &imp::BrokerSnapshot) -> Result<Vec<Record>, MappingError> {
    snapshot
        .log
        .iter()
        .enumerate()
        .map(|(position, (offset, epoch, id))| {
            if *offset != position as u64 {
                return Err(inconsistent(snapshot, "log offsets are not 0, 1, 2, ..."));
            }
            Ok(Record {
                leader_epoch: small("leader_epoch", u64::from(*epoch))?,
                record_id: mapping::record_id_from_impl(id)?,
            })
        })
        .collect()
}

fn replica(progress: &imp::ReplicaProgress) -> Result<ReplicaProgress, MappingError> {
    Ok(ReplicaProgress {
        fetch_offset: progress
            .fetch_offset
            .map(|o| small("fetch_offset", o))
            .transpose()?,
        hw_sent: small("hw_sent", progress.hw_sent)?,
        // The snapshot says whether a fetch is parked, not with which leader epoch; its answer
        // (on the wire) does, and is compared there. See `erase_broker`.
        parked: progress.parked.then_some(PARKED_EPOCH_ERASED),
        broker_epoch: small("broker_epoch", u64::from(progress.broker_epoch))?,
    })
}

fn fetch_state(state: imp::FetchState) -> FetchState {
    match state {
        imp::FetchState::Idle => FetchState::Idle,
        imp::FetchState::Truncating => FetchState::Truncating,
        imp::FetchState::Fetching => FetchState::Fetching,
    }
}

/// `value` in the model's (narrower) number type, or out of range.
fn small<T: TryFrom<u64>>(what: &'static str, value: u64) -> Result<T, MappingError> {
    T::try_from(value).map_err(|_| MappingError::OutOfRange { what, value })
}

fn inconsistent(snapshot: &imp::BrokerSnapshot, what: &str) -> MappingError {
    MappingError::ImplOnly(format!(
        "inconsistent snapshot of broker {}: {what}",
        BrokerId(snapshot.id as u8)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::HARNESS_PRODUCER_ID;
    use insync_model::types::{BrokerSet, View};
    use std::collections::BTreeMap;

    fn rid(sequence: u32) -> imp::RecordId {
        imp::RecordId {
            producer_id: HARNESS_PRODUCER_ID,
            sequence,
        }
    }

    fn view(leader: u32, epoch: u32, isr: &[u32], partition_epoch: u32) -> imp::View {
        imp::View {
            leader: Some(leader),
            leader_epoch: epoch,
            isr: isr.iter().copied().collect(),
            partition_epoch,
        }
    }

    fn leader_snapshot() -> imp::BrokerSnapshot {
        let mut replicas = BTreeMap::new();
        replicas.insert(
            2,
            imp::ReplicaProgress {
                fetch_offset: Some(1),
                hw_sent: 0,
                parked: true,
                broker_epoch: 1,
            },
        );
        replicas.insert(
            3,
            imp::ReplicaProgress {
                fetch_offset: None,
                hw_sent: 0,
                parked: false,
                broker_epoch: 0,
            },
        );
        imp::BrokerSnapshot {
            id: 1,
            broker_epoch: 0,
            registered: true,
            view: Some(view(1, 2, &[1, 2], 3)),
            log: vec![(0, 1, rid(1)), (1, 2, rid(2))],
            log_end_offset: 2,
            hw: 1,
            durable_end_offset: 1,
            hw_checkpoint: 0,
            leader_epoch_start_offset: Some(1),
            replicas,
            pending_isr: Some([1, 2, 3].into_iter().collect()),
            waiting: vec![(rid(2), 1)],
            fetch_state: imp::FetchState::Idle,
            armed_timers: [imp::Timer::Lag(3)].into_iter().collect(),
            timers_fired: BTreeMap::new(),
        }
    }

    /// Goal: every field of a leader's snapshot lands in the model field of the same name.
    #[test]
    fn leader_snapshot_maps_field_by_field() {
        let state = broker(&leader_snapshot()).unwrap();
        assert_eq!(state.broker_epoch, 0);
        assert!(state.registered);
        assert_eq!(
            state.view,
            Some(View {
                leader: Some(BrokerId(1)),
                leader_epoch: 2,
                isr: BrokerSet::empty().with(BrokerId(1)).with(BrokerId(2)),
                partition_epoch: 3,
            })
        );
        assert_eq!(
            state.log,
            vec![
                Record {
                    leader_epoch: 1,
                    record_id: 1
                },
                Record {
                    leader_epoch: 2,
                    record_id: 2
                },
            ]
        );
        assert_eq!(state.hw, 1);
        assert_eq!((state.flushed, state.hw_checkpoint), (1, 0));
        let leader = state.leader.expect("a leader");
        assert_eq!(leader.leader_epoch_start_offset, 1);
        assert_eq!(leader.replicas[&BrokerId(2)].fetch_offset, Some(1));
        assert_eq!(
            leader.replicas[&BrokerId(2)].parked,
            Some(PARKED_EPOCH_ERASED)
        );
        assert_eq!(leader.replicas[&BrokerId(2)].broker_epoch, 1);
        assert_eq!(leader.replicas[&BrokerId(3)].fetch_offset, None);
        assert_eq!(leader.pending_isr, Some(BrokerSet::all(3)));
        assert_eq!(leader.waiting, vec![(2, 1)]);
        assert_eq!(state.fetch_state, FetchState::Idle);
    }

    /// Goal: a follower has no leader state; its broker epoch and registration come from
    /// the snapshot.
    #[test]
    fn follower_snapshot_has_no_leader_state() {
        let snapshot = imp::BrokerSnapshot {
            id: 2,
            broker_epoch: 1,
            registered: false,
            view: None,
            log: vec![(0, 1, rid(1))],
            log_end_offset: 1,
            hw: 0,
            durable_end_offset: 1,
            hw_checkpoint: 0,
            leader_epoch_start_offset: None,
            replicas: BTreeMap::new(),
            pending_isr: None,
            waiting: Vec::new(),
            fetch_state: imp::FetchState::Fetching,
            armed_timers: [imp::Timer::FetchRetry, imp::Timer::BrokerHeartbeat]
                .into_iter()
                .collect(),
            timers_fired: BTreeMap::new(),
        };
        let state = broker(&snapshot).unwrap();
        assert_eq!((state.broker_epoch, state.registered), (1, false));
        assert!(state.leader.is_none());
        assert_eq!(state.fetch_state, FetchState::Fetching);
        // `BrokerHeartbeat` is the implementation's alone (protocol.md §6): not compared.
        let timers = armed_timers(&snapshot.armed_timers).unwrap();
        assert_eq!(timers, BTreeSet::from([Timer::FetchRetry]));
    }

    /// Goal: inconsistent or foreign snapshots are refused, not silently reduced.
    #[test]
    fn inconsistent_snapshots_are_errors() {
        let mut gap = leader_snapshot();
        gap.log[1].0 = 5;
        assert!(broker(&gap).is_err());
        let mut foreign = leader_snapshot();
        foreign.log[0].2.producer_id = 99;
        assert!(broker(&foreign).is_err());
        let mut stray = leader_snapshot();
        stray.leader_epoch_start_offset = None;
        assert!(broker(&stray).is_err());
    }

    /// Goal: the controller's snapshot maps view, fenced, ELR and the last known leader; timers
    /// map by name.
    #[test]
    fn controller_snapshot_maps() {
        let snapshot = imp::ControllerSnapshot {
            view: view(2, 3, &[2], 5),
            fenced: [1].into_iter().collect(),
            elr: [3].into_iter().collect(),
            last_known_leader: Some(2),
            broker_epochs: [(3, 2)].into_iter().collect(),
            armed_timers: [imp::Timer::Heartbeat(1), imp::Timer::Expire(3)]
                .into_iter()
                .collect(),
            timers_fired: BTreeMap::new(),
        };
        let state = controller(&snapshot).unwrap();
        assert_eq!(state.view.leader, Some(BrokerId(2)));
        assert_eq!(state.fenced, BrokerSet::empty().with(BrokerId(1)));
        assert_eq!(state.elr, BrokerSet::empty().with(BrokerId(3)));
        assert_eq!(state.last_known_leader, Some(BrokerId(2)));
        assert_eq!(state.broker_epochs, BTreeMap::from([(BrokerId(3), 2)]));
        let timers = armed_timers(&snapshot.armed_timers).unwrap();
        assert!(timers.contains(&Timer::Heartbeat(BrokerId(1))));
        assert_eq!(timers.len(), 2);
    }
}
