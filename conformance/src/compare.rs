//! The comparison: pure functions from the model's state and what the harness observed (the
//! nodes' `Inspect` snapshots, the router's queues, the harness's client) to the list of
//! differences, one line each. No I/O: `step` gathers the observations, this file judges them,
//! so every rule of "what counts as a divergence" is unit-tested on hand-built values.

use std::collections::{BTreeMap, BTreeSet};

use insync_impl::protocol as imp;
use insync_impl::storage::power_loss::Recovered;
use insync_model::actor::State;
use insync_model::broker::{BrokerState, BrokerStorage};
use insync_model::client::ClientState;
use insync_model::msg::{Msg, Timer};
use insync_model::types::Record;
use insync_model::Config;
use serde_json::Value;
use stateright::actor::{Id, Network};

use crate::abstraction;
use crate::diff;
use crate::mapping::{self, TimerTarget};
use crate::router::{Channel, Frame};
use crate::trace;

/// A node the model has up must run; one it has crashed must not.
pub fn liveness(name: &str, crashed: bool, running: bool) -> Option<String> {
    (crashed == running).then(|| {
        format!(
            "{name}: the model has it {}, the process is {}",
            if crashed { "crashed" } else { "up" },
            if running { "running" } else { "down" }
        )
    })
}

/// The harness's client against the model's client actor.
pub fn client(name: &str, model: &State, real: &ClientState) -> Vec<String> {
    let expected = trace::actor_value(model);
    let actual = serde_json::to_value(real).expect("client states serialise");
    lines(diff::diff(name, &expected, &actual))
}

/// One running node: its snapshot, through the abstraction function, against the model's state
/// of that actor; its armed timers against the model's timers of that actor that a node fires.
pub fn node(
    name: &str,
    model: &State,
    model_timers: &BTreeSet<Timer>,
    snapshot: &imp::Snapshot,
) -> Vec<String> {
    let (expected, actual, armed) = match (model, snapshot) {
        (State::Controller(model), imp::Snapshot::Controller(real)) => (
            to_value(model),
            abstraction::controller(real).map(|s| to_value(&s)),
            &real.armed_timers,
        ),
        (State::Broker(model), imp::Snapshot::Broker(real)) => (
            to_value(&abstraction::erase_broker(model)),
            abstraction::broker(real).map(|s| to_value(&s)),
            &real.armed_timers,
        ),
        (_, other) => {
            return vec![format!(
                "{name}: the node reports a snapshot of another kind: {other:?}"
            )]
        }
    };
    let mut differences = match actual {
        Ok(actual) => lines(diff::diff(name, &expected, &actual)),
        Err(e) => vec![format!("{name}: {e}")],
    };
    differences.extend(timers(name, model_timers, armed));
    differences
}

/// The node's armed timers against the model's (client timers are the harness's own).
pub fn timers(name: &str, model: &BTreeSet<Timer>, armed: &BTreeSet<imp::Timer>) -> Vec<String> {
    let expected: BTreeSet<Timer> = model
        .iter()
        .copied()
        .filter(|t| matches!(mapping::timer_to_impl(t), TimerTarget::Node(_)))
        .collect();
    match abstraction::armed_timers(armed) {
        Ok(actual) if actual == expected => Vec::new(),
        Ok(actual) => vec![format!(
            "{name}.timers: expected {expected:?}, actual {actual:?}"
        )],
        Err(e) => vec![format!("{name}.timers: {e}")],
    }
}

/// Every channel's frames, mapped, against the model's messages in flight on it: what a step
/// emitted, and that nothing else was emitted or lost.
pub fn network(
    cfg: &Config,
    network: &Network<Msg>,
    queues: &BTreeMap<Channel, Vec<Frame>>,
) -> Vec<String> {
    let Network::Ordered(channels) = network else {
        unreachable!("the model's network is ordered")
    };
    let mut expected: BTreeMap<(Id, Id), Vec<Msg>> = BTreeMap::new();
    for ((src, dst), queue) in channels {
        if !queue.is_empty() {
            expected.insert((*src, *dst), queue.iter().cloned().collect());
        }
    }
    let mut differences = Vec::new();
    let mut actual: BTreeMap<(Id, Id), Vec<Msg>> = BTreeMap::new();
    for ((source, target), frames) in queues {
        let ids = mapping::actor_of_node(cfg, *source)
            .and_then(|s| Ok((s, mapping::actor_of_node(cfg, *target)?)));
        let (src, dst) = match ids {
            Ok(ids) => ids,
            Err(e) => {
                differences.push(format!("network {source:?} → {target:?}: {e}"));
                continue;
            }
        };
        let mut mapped = Vec::with_capacity(frames.len());
        for frame in frames {
            match mapping::msg_from_impl(frame, None) {
                Ok(m) => mapped.push(m),
                Err(e) => differences.push(format!(
                    "network {}: frame {frame:?}: {e}",
                    channel_name(cfg, src, dst)
                )),
            }
        }
        if !mapped.is_empty() {
            actual.insert((src, dst), mapped);
        }
    }
    let keys: BTreeSet<(Id, Id)> = expected.keys().chain(actual.keys()).copied().collect();
    for key in keys {
        let e = expected.get(&key).map(Vec::as_slice).unwrap_or_default();
        let a = actual.get(&key).map(Vec::as_slice).unwrap_or_default();
        if e != a {
            differences.push(format!(
                "network {}: expected {}, actual {}",
                channel_name(cfg, key.0, key.1),
                fmt_msgs(e),
                fmt_msgs(a)
            ));
        }
    }
    differences
}

/// After a power loss: what recovery found on a broker's disk against the model's storage of
/// that broker (`None`: it never saved any). The model's restart keeps `storage.log` and
/// installs `min(storage.hw, log length)`; the leader-epoch cache is what the log's epochs
/// say (a checkpoint ahead of the shortened log is clamped by recovery, as the model's
/// lookups read the log itself).
pub fn storage(name: &str, model: Option<&BrokerStorage>, found: &Recovered) -> Vec<String> {
    let never_saved = BrokerStorage {
        log: Vec::new(),
        hw: 0,
        broker_epoch: 0,
    };
    let model = model.unwrap_or(&never_saved);
    let mut differences = Vec::new();
    match mapping::records_from_impl(&found.records, 0) {
        Ok(log) if log == model.log => {}
        Ok(log) => differences.push(format!(
            "{name}.storage.log: the model keeps {:?}, recovery found {log:?}",
            model.log
        )),
        Err(e) => differences.push(format!("{name}.storage.log: {e}")),
    }
    let hw = u64::from(model.hw).min(model.log.len() as u64);
    if found.high_watermark != hw {
        differences.push(format!(
            "{name}.storage.hw: the model recovers {hw} (checkpoint {}), recovery found {}",
            model.hw, found.high_watermark
        ));
    }
    let expected = epoch_starts(&model.log);
    let actual: Vec<(u64, u64)> = found
        .epochs
        .iter()
        .map(|entry| (u64::from(entry.epoch), entry.start_offset))
        .collect();
    if actual != expected {
        differences.push(format!(
            "{name}.storage.epochs: the model's log starts epochs at {expected:?}, recovery \
             found {actual:?}"
        ));
    }
    differences
}

/// After a power loss: what recovery found against the crashed broker's durable state in the
/// model (docs/protocol.md §2): the log up to `flushed`, the HW checkpoint clamped to it. The
/// model's storage is saved from these two fields, so this cross-checks the state the model
/// kept at the crash as well as the storage [`storage`] compares.
pub fn durable_state(name: &str, model: &BrokerState, found: &Recovered) -> Vec<String> {
    let mut differences = Vec::new();
    let flushed = u64::from(model.flushed);
    let log_end = found.records.len() as u64;
    if log_end != flushed {
        differences.push(format!(
            "{name}.flushed: the model's durable end is {flushed}, recovery found {log_end} \
             records"
        ));
    }
    let hw = u64::from(model.hw_checkpoint).min(flushed);
    if found.high_watermark != hw {
        differences.push(format!(
            "{name}.hw_checkpoint: the model recovers {hw} (checkpoint {}), recovery found {}",
            model.hw_checkpoint, found.high_watermark
        ));
    }
    differences
}

/// `(epoch, first offset)` for every epoch in `log`, in order.
fn epoch_starts(log: &[Record]) -> Vec<(u64, u64)> {
    let mut starts: Vec<(u64, u64)> = Vec::new();
    for (offset, record) in log.iter().enumerate() {
        let epoch = u64::from(record.leader_epoch);
        if starts.last().is_none_or(|(last, _)| *last != epoch) {
            starts.push((epoch, offset as u64));
        }
    }
    starts
}

/// `controller → broker_1`, in the trace's actor names.
pub fn channel_name(cfg: &Config, src: Id, dst: Id) -> String {
    let names = trace::actor_vars(cfg);
    let name = |id: Id| {
        names
            .get(usize::from(id))
            .cloned()
            .unwrap_or_else(|| format!("actor {id:?}"))
    };
    format!("{} → {}", name(src), name(dst))
}

fn lines(differences: Vec<diff::Difference>) -> Vec<String> {
    differences.iter().map(|d| d.to_string()).collect()
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model states serialise")
}

fn fmt_msgs(msgs: &[Msg]) -> String {
    let items: Vec<String> = msgs.iter().map(insync_model::describe::fmt_msg).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_impl::protocol::NodeId;
    use insync_model::controller::ControllerState;
    use insync_model::msg::PeerMsg;
    use insync_model::types::{BrokerId, BrokerSet, View};
    use stateright::actor::Envelope;

    fn model_controller() -> ControllerState {
        ControllerState {
            view: View {
                leader: Some(BrokerId(1)),
                leader_epoch: 0,
                isr: BrokerSet::all(2),
                partition_epoch: 0,
            },
            fenced: BrokerSet::empty(),
            elr: BrokerSet::empty(),
            last_known_leader: None,
            broker_epochs: BTreeMap::new(),
            choice: None,
        }
    }

    fn real_controller() -> imp::ControllerSnapshot {
        imp::ControllerSnapshot {
            view: imp::View {
                leader: Some(1),
                leader_epoch: 0,
                isr: [1, 2].into(),
                partition_epoch: 0,
            },
            fenced: BTreeSet::new(),
            elr: BTreeSet::new(),
            last_known_leader: None,
            broker_epochs: BTreeMap::new(),
            armed_timers: BTreeSet::new(),
            timers_fired: BTreeMap::new(),
        }
    }

    fn disk_record(offset: u64, epoch: u32, record_id: u32) -> imp::Record {
        imp::Record {
            offset,
            leader_epoch: epoch,
            producer_id: crate::mapping::HARNESS_PRODUCER_ID,
            sequence: record_id,
            value: crate::mapping::payload(record_id),
        }
    }

    fn model_storage(log: &[(u32, u32)], hw: u32) -> BrokerStorage {
        BrokerStorage {
            log: log
                .iter()
                .map(|(leader_epoch, record_id)| Record {
                    leader_epoch: *leader_epoch,
                    record_id: *record_id,
                })
                .collect(),
            hw,
            broker_epoch: 0,
        }
    }

    /// A broker that holds `leo` records, of which `flushed` are durable, with its HW
    /// checkpoint at `hw_checkpoint`.
    fn broker_state(flushed: u32, leo: u32, hw_checkpoint: u32) -> BrokerState {
        BrokerState {
            broker_epoch: 0,
            registered: true,
            view: None,
            log: (0..leo)
                .map(|offset| Record {
                    leader_epoch: 0,
                    record_id: offset + 1,
                })
                .collect(),
            hw: hw_checkpoint,
            flushed,
            hw_checkpoint,
            leader: None,
            fetch_state: insync_model::broker::FetchState::Idle,
        }
    }

    fn found(records: Vec<imp::Record>, high_watermark: u64, epochs: &[(u32, u64)]) -> Recovered {
        Recovered {
            records,
            high_watermark,
            epochs: epochs
                .iter()
                .map(|(epoch, start_offset)| insync_impl::storage::EpochEntry {
                    epoch: *epoch,
                    start_offset: *start_offset,
                })
                .collect(),
        }
    }

    #[test]
    fn recovered_storage_matches_the_model_or_names_the_part_that_does_not() {
        let model = model_storage(&[(0, 1), (1, 2)], 2);
        let disk = vec![disk_record(0, 0, 1), disk_record(1, 1, 2)];
        let same = found(disk.clone(), 2, &[(0, 0), (1, 1)]);
        assert!(storage("broker_1", Some(&model), &same).is_empty());
        let lost = found(disk[..1].to_vec(), 1, &[(0, 0)]);
        let found_lost = storage("broker_1", Some(&model), &lost);
        assert_eq!(
            found_lost.len(),
            3,
            "log, hw and epochs differ: {found_lost:?}"
        );
        assert!(found_lost[0].starts_with("broker_1.storage.log"));
        let stale_hw = found(disk, 1, &[(0, 0), (1, 1)]);
        let off = storage("broker_1", Some(&model), &stale_hw);
        assert_eq!(off.len(), 1, "{off:?}");
        assert!(off[0].starts_with("broker_1.storage.hw"), "{off:?}");
    }

    #[test]
    fn the_model_clamps_a_checkpoint_ahead_of_its_log_and_so_must_recovery() {
        let model = model_storage(&[(0, 1)], 3);
        let disk = found(vec![disk_record(0, 0, 1)], 1, &[(0, 0)]);
        assert!(storage("broker_2", Some(&model), &disk).is_empty());
        let empty = found(Vec::new(), 0, &[]);
        assert!(
            storage("broker_2", None, &empty).is_empty(),
            "never saved: empty"
        );
    }

    #[test]
    fn recovery_matches_the_crashed_brokers_durable_end_and_checkpoint() {
        let (log, hw_checkpoint) = (vec![disk_record(0, 0, 1), disk_record(1, 1, 2)], 2);
        let mut model = broker_state(2, 3, 2);
        assert!(
            durable_state("broker_1", &model, &found(log.clone(), hw_checkpoint, &[])).is_empty()
        );
        model.flushed = 1;
        let off = durable_state("broker_1", &model, &found(log, hw_checkpoint, &[]));
        assert_eq!(
            off.len(),
            2,
            "durable end and clamped checkpoint differ: {off:?}"
        );
        assert!(off[0].starts_with("broker_1.flushed"), "{off:?}");
        assert!(off[1].starts_with("broker_1.hw_checkpoint"), "{off:?}");
    }

    #[test]
    fn liveness_flags_only_a_disagreement() {
        assert_eq!(liveness("broker_1", false, true), None);
        assert_eq!(liveness("broker_1", true, false), None);
        let up = liveness("broker_1", false, false).expect("up in the model, down for real");
        assert!(up.contains("the model has it up"), "{up}");
        assert!(liveness("broker_1", true, true).is_some());
    }

    /// `real` against the model's controller of `model_controller()`, which arms no timer.
    fn controller_differences(real: imp::ControllerSnapshot) -> Vec<String> {
        let model = State::Controller(model_controller());
        let snapshot = imp::Snapshot::Controller(real);
        node("controller", &model, &BTreeSet::new(), &snapshot)
    }

    #[test]
    fn a_matching_node_has_no_difference_and_a_field_off_names_it() {
        assert!(controller_differences(real_controller()).is_empty());
        let mut fenced = real_controller();
        fenced.fenced.insert(2);
        let found = controller_differences(fenced);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("controller.fenced"), "{found:?}");
    }

    #[test]
    fn a_timer_armed_on_one_side_only_is_a_difference() {
        let mut armed = real_controller();
        armed.armed_timers.insert(imp::Timer::Expire(2));
        let found = controller_differences(armed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("controller.timers"), "{found:?}");
    }

    #[test]
    fn a_snapshot_of_the_wrong_kind_is_a_difference() {
        let model = State::Client(crate::client::initial());
        let snapshot = imp::Snapshot::Controller(real_controller());
        assert_eq!(node("client", &model, &BTreeSet::new(), &snapshot).len(), 1);
    }

    #[test]
    fn network_compares_every_channel_both_ways() {
        let cfg = Config::new(2);
        let envelope = Envelope {
            src: Id::from(0),
            dst: Id::from(1),
            msg: Msg::Peer(PeerMsg::RegisterBrokerResponse),
        };
        let model = Network::new_ordered([envelope]);
        let channel = (NodeId::Controller, NodeId::Broker(1));
        let frame = Frame::Peer(imp::PeerMessage::RegisterBrokerResponse);
        let queued = BTreeMap::from([(channel, vec![frame])]);
        assert!(network(&cfg, &model, &queued).is_empty());
        let missing = network(&cfg, &model, &BTreeMap::new());
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains("controller → broker_1"), "{missing:?}");
        let extra = network(&cfg, &Network::new_ordered([]), &queued);
        assert_eq!(extra.len(), 1, "a frame the model does not have: {extra:?}");
    }
}
