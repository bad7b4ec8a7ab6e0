//! The consequence of a counterexample on real processes: after the trace, let every frame in
//! flight between the nodes arrive, then read the partition back with the real
//! `insync consume`, as an operator would, and list the acknowledged records that are gone.

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, NodeId};
use serde_json::Value;

use crate::mapping;
use crate::replay::CLUSTER_ID;
use crate::step::Harness;
use insync_model::types::RecordId;

/// Most frames delivered while letting a counterexample's cluster settle.
pub const DRAIN_DELIVERIES_MAX: usize = 1000;

/// What a real cluster holds after a counterexample: acknowledged records that are gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consequence {
    /// Record ids the real brokers acknowledged (with the trace's acks setting).
    pub acked: Vec<RecordId>,
    /// The leader `consume` read from, per the controller's view.
    pub leader: Option<u32>,
    /// `(offset, record id, leader epoch)` as `insync consume` printed them.
    pub consumed: Vec<(u64, RecordId, u32)>,
    /// Acknowledged records `consume` does not return.
    pub missing: Vec<RecordId>,
    /// Every running broker's log, `(offset, record id, leader epoch)`.
    pub logs: BTreeMap<u32, Vec<(u64, RecordId, u32)>>,
    /// `consume`'s stderr or failure, if any.
    pub note: String,
    /// The counterexample's property.
    pub property: Option<String>,
    /// The nodes' state at the end of the trace, before frames in flight were let arrive.
    pub evidence: crate::evidence::Evidence,
}

impl Harness {
    /// Lets every frame in flight between the nodes arrive (client channels stay as they
    /// are), then reads the partition with the real `insync consume`.
    pub(crate) async fn consequence(&mut self, binary: &std::path::Path) -> Consequence {
        let mut note = String::new();
        for _ in 0..DRAIN_DELIVERIES_MAX {
            let next = self.router.queues().into_keys().find(|(src, dst)| {
                !matches!(src, NodeId::Client(_))
                    && !matches!(dst, NodeId::Client(_))
                    && self.cluster.is_running(*dst)
            });
            let Some((src, dst)) = next else { break };
            let delivered = self.router.deliver(src, dst).await;
            if let Err(e) = delivered.map_err(|e| format!("{e}")) {
                note = e;
                break;
            }
            if let Err(stop) = self.settle(dst).await {
                note = format!("{stop:?}");
                break;
            }
        }
        let mut logs = BTreeMap::new();
        let mut leader = None;
        let nodes: Vec<NodeId> = self.controls.keys().copied().collect();
        for node in nodes {
            let Ok(snapshot) = self.control(node).map(|c| c.inspect()) else {
                continue;
            };
            match snapshot.await {
                Ok(imp::Snapshot::Controller(c)) => leader = c.view.leader,
                Ok(imp::Snapshot::Broker(b)) => {
                    let log = b
                        .log
                        .iter()
                        .map(|(o, e, id)| (*o, mapping::record_id_from_impl(id).unwrap_or(0), *e))
                        .collect();
                    logs.insert(b.id, log);
                }
                Err(e) => note = e.to_string(),
            }
        }
        let (consumed, consume_note) = self.consume(binary).await;
        if !consume_note.is_empty() {
            note = consume_note;
        }
        let acked = self.client.acked.clone();
        let missing = acked
            .iter()
            .copied()
            .filter(|r| !consumed.iter().any(|(_, id, _)| id == r))
            .collect();
        Consequence {
            acked,
            leader,
            consumed,
            missing,
            logs,
            note,
            property: None,
            evidence: crate::evidence::Evidence::default(),
        }
    }

    /// `insync consume --json` bootstrapped from the controller, as an operator would run it.
    async fn consume(&self, binary: &std::path::Path) -> (Vec<(u64, RecordId, u32)>, String) {
        // The controller's metadata names the brokers by their router addresses, through
        // which an outside client is passed (`router::PASS_THROUGH_EXCEPT`).
        let bootstrap = self
            .cluster
            .listen_addr(NodeId::Controller)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let output = tokio::process::Command::new(binary)
            .args([
                "consume",
                "--json",
                "--timeout-ms",
                "5000",
                "--cluster-id",
                CLUSTER_ID,
            ])
            .arg("--bootstrap")
            .arg(bootstrap)
            .kill_on_drop(true)
            .output()
            .await;
        let output = match output {
            Ok(o) => o,
            Err(e) => return (Vec::new(), format!("cannot run consume: {e}")),
        };
        let records = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| {
                let offset = v.get("offset")?.as_u64()?;
                let sequence = v.get("sequence")?.as_u64()?;
                let epoch = v.get("leader_epoch")?.as_u64()?;
                Some((
                    offset,
                    RecordId::try_from(sequence).ok()?,
                    u32::try_from(epoch).ok()?,
                ))
            })
            .collect();
        (
            records,
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    }
}
