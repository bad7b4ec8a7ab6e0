//! What a counterexample's violated invariant looks like on real nodes, read from the nodes'
//! `Inspect` snapshots at the end of the replay (before the harness lets frames in flight
//! arrive): the same definitions as `model/src/properties.rs`, applied to the real state.
//!
//! - `leader_completeness`: committed records (below the HW of some running broker) that the
//!   real leader's log does not hold at their offset;
//! - `strong_isr`: ISR members (running, registered) whose log differs from the real leader's
//!   below the leader's HW.
//!
//! `no_acked_record_lost` and `acked_record_durable` are shown by `insync consume` instead
//! (`replay::Consequence::missing`).

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, NodeId};

use crate::mapping;

/// One log entry as `(offset, record id, leader epoch)`.
pub type Entry = (u64, insync_model::types::RecordId, u32);

/// The real state behind an invariant violation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The leader named by the controller's view, if it acts as leader of that epoch.
    pub leader: Option<u32>,
    /// That leader's HW.
    pub leader_hw: u64,
    /// The view's ISR.
    pub isr: Vec<u32>,
    /// Every running broker's log and HW at the end of the trace.
    pub logs: BTreeMap<u32, (Vec<Entry>, u64)>,
    /// Committed records the leader lacks at their offset: `(entry, a broker whose HW
    /// covers it)`.
    pub committed_missing: Vec<(Entry, u32)>,
    /// ISR members whose log differs from the leader's below the leader's HW.
    pub isr_disagreeing: Vec<u32>,
}

fn entries(snapshot: &imp::BrokerSnapshot) -> Vec<Entry> {
    snapshot
        .log
        .iter()
        .map(|(o, e, id)| (*o, mapping::record_id_from_impl(id).unwrap_or(0), *e))
        .collect()
}

/// The evidence in `snapshots` (the last one of every node), counting only the brokers for
/// which `running` holds.
pub fn evidence(
    snapshots: &BTreeMap<NodeId, imp::Snapshot>,
    running: impl Fn(NodeId) -> bool,
) -> Evidence {
    let mut view = None;
    let mut brokers = BTreeMap::new();
    for (node, snapshot) in snapshots {
        match snapshot {
            imp::Snapshot::Controller(c) => view = Some(c.view.clone()),
            imp::Snapshot::Broker(b) if running(*node) => {
                brokers.insert(b.id, b);
            }
            imp::Snapshot::Broker(_) => {}
        }
    }
    let mut out = Evidence {
        logs: brokers
            .iter()
            .map(|(id, b)| (*id, (entries(b), b.hw)))
            .collect(),
        ..Evidence::default()
    };
    let Some(view) = view else { return out };
    out.isr = view.isr.iter().copied().collect();
    let acting = view.leader.and_then(|l| brokers.get(&l)).filter(|b| {
        b.leader_epoch_start_offset.is_some()
            && b.view.as_ref().map(|v| v.leader_epoch) == Some(view.leader_epoch)
    });
    let Some(leader) = acting else { return out };
    out.leader = Some(leader.id);
    out.leader_hw = leader.hw;
    let leader_log = entries(leader);
    for (id, b) in &brokers {
        for entry in entries(b).into_iter().filter(|(o, _, _)| *o < b.hw) {
            let held = leader_log.get(entry.0 as usize) == Some(&entry);
            let known = out.committed_missing.iter().any(|(e, _)| *e == entry);
            if !held && !known {
                out.committed_missing.push((entry, *id));
            }
        }
    }
    let hw = leader.hw as usize;
    for member in &view.isr {
        let Some(b) = brokers
            .get(member)
            .filter(|b| b.registered && b.id != leader.id)
        else {
            continue;
        };
        let log = entries(b);
        if log.len() < hw || log[..hw] != leader_log[..hw.min(leader_log.len())] {
            out.isr_disagreeing.push(*member);
        }
    }
    out
}

/// Lines describing the violation of `property` on the real nodes (empty for the properties
/// `consume` shows).
pub fn text(property: &str, e: &Evidence, consumed: &[Entry]) -> Vec<String> {
    if !matches!(property, "leader_completeness" | "strong_isr") {
        return Vec::new();
    }
    let Some(leader) = e.leader else {
        return vec!["no broker acts as leader of the controller's view".to_string()];
    };
    let log = |b: &u32| e.logs.get(b).map(|(l, hw)| format!("{l:?} (HW {hw})"));
    match property {
        "leader_completeness" => e
            .committed_missing
            .iter()
            .map(|((o, r, ep), holder)| {
                let consumed_it = consumed.contains(&(*o, *r, *ep));
                format!(
                    "LEADER INCOMPLETE: record {r} (offset {o}, epoch {ep}) is committed \
                     (below broker {holder}'s HW) but leader broker {leader}'s log {} lacks \
                     it, and `insync consume` {}",
                    log(&leader).unwrap_or_default(),
                    if consumed_it {
                        "still returns it".to_string()
                    } else {
                        format!("returns {:?} at offset {o}", consumed.get(*o as usize))
                    }
                )
            })
            .collect(),
        "strong_isr" => e
            .isr_disagreeing
            .iter()
            .map(|m| {
                format!(
                    "ISR DISAGREES below HW {}: ISR member broker {m}'s log {} differs from \
                     leader broker {leader}'s log {}",
                    e.leader_hw,
                    log(m).unwrap_or_default(),
                    log(&leader).unwrap_or_default()
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
