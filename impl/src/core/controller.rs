//! The controller's state machine: the membership service (docs/protocol.md §2 "Controller",
//! §4.10). It owns the partition's view, the fenced set and (`kip-966`) the eligible leader
//! replicas; it accepts ISR changes from the current leader, fences brokers whose session
//! expired, unfences brokers that register, and elects leaders.
//!
//! Durability contract: everything in `ControllerState` is persistent. When an input changes
//! it, the returned `Effects` has `persist_state` set, and the runtime must write `state()`
//! durably (write + fsync + rename) *before* it sends any message of those effects: a view
//! the brokers have seen must survive a controller restart, or epochs could be reused.
//!
//! Timers (§4.10): `Expire(b)` is armed for every unfenced broker and `Heartbeat(b)` for every
//! fenced one (the model bounds how many fire; the implementation does not). Every message
//! from b restarts `Expire(b)`'s clock, so in real time it fires when b has been silent for
//! the session timeout; a `Heartbeat` message from a fenced broker at its registered broker
//! epoch is `Heartbeat(b)` (the broker was falsely suspected and comes back). In stepped mode
//! the harness fires both by name.
//! `Heartbeat(b)` is handled like a `RegisterBroker` at b's registered broker epoch: the
//! protocol's only way back in, and a conservative one (the broker is treated as having
//! possibly lost unflushed records).

mod election;
mod handlers;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ControllerError, Effects, ProtocolConfig};
use crate::protocol::{
    BrokerEpoch, BrokerId, ControllerSnapshot, NodeId, Outgoing, PeerId, PeerMessage, Timer, View,
};

/// The controller's persistent state. See the module documentation for when the runtime
/// must write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    pub view: View,
    /// Brokers whose session expired and who have not registered since.
    pub fenced: BTreeSet<BrokerId>,
    /// Eligible leader replicas (`kip-966` only; empty otherwise).
    pub elr: BTreeSet<BrokerId>,
    /// The leader the partition had when it last went leaderless (`kip-966` only; Kafka's
    /// `LastKnownElr`), electable once the ISR and the ELR are empty (§4.10).
    pub last_known_leader: Option<BrokerId>,
    /// Each broker's epoch from its last registration (KIP-903; absent: 0, never restarted).
    pub broker_epochs: BTreeMap<BrokerId, BrokerEpoch>,
}

impl ControllerState {
    /// A fresh cluster: `{ leader: the assignment's first broker (1 on partition 0),
    /// leader_epoch: 1, isr: all brokers, partition_epoch: 1 }`, nobody fenced, empty ELR.
    pub fn initial(config: &ProtocolConfig) -> Self {
        let isr: BTreeSet<BrokerId> = config.brokers.iter().copied().collect();
        // The assignment's first broker (the lowest id on partition 0, as in the model).
        let leader = config.brokers.first().copied();
        assert!(leader.is_some(), "a partition needs at least one broker");
        ControllerState {
            view: View {
                leader,
                leader_epoch: 1,
                isr,
                partition_epoch: 1,
            },
            fenced: BTreeSet::new(),
            elr: BTreeSet::new(),
            last_known_leader: None,
            broker_epochs: BTreeMap::new(),
        }
    }
}

/// The controller's protocol core. See the module documentation.
pub struct ControllerCore {
    config: ProtocolConfig,
    state: ControllerState,
    armed: BTreeSet<Timer>,
    /// Timers whose clock the input being handled restarts, if still armed.
    restarted: BTreeSet<Timer>,
    /// How many times each timer kind fired (`ControllerSnapshot::timers_fired`).
    fired: BTreeMap<&'static str, u64>,
    outbox: Vec<Outgoing>,
}

impl ControllerCore {
    /// Starts from the persisted state, or from the initial state of a fresh cluster (which
    /// the runtime must then persist: `persist_state` is set). Sends nothing: brokers of a
    /// fresh cluster start with the initial view installed, and after a controller restart
    /// brokers with an older view learn the current one from the answer to their heartbeat.
    pub fn new(config: ProtocolConfig, persisted: Option<ControllerState>) -> (Self, Effects) {
        let fresh = persisted.is_none();
        let state = persisted.unwrap_or_else(|| ControllerState::initial(&config));
        let mut core = ControllerCore {
            config,
            state,
            armed: BTreeSet::new(),
            restarted: BTreeSet::new(),
            fired: BTreeMap::new(),
            outbox: Vec::new(),
        };
        let mut effects = core.finish(BTreeSet::new(), None);
        effects.persist_state = fresh;
        (core, effects)
    }

    /// Handles one message from a broker (a controller has no clients). Messages from anyone
    /// else, or that a controller never receives, are errors. Any message from b is a sign of
    /// life: `Expire(b)`'s clock restarts.
    pub fn step_peer(
        &mut self,
        from: PeerId,
        message: PeerMessage,
    ) -> Result<Effects, ControllerError> {
        let before_timers = self.armed.clone();
        let before_state = self.state.clone();
        if let PeerId::Broker(broker) = from {
            self.restarted.insert(Timer::Expire(broker));
        }
        let result = self.dispatch(from, message);
        let effects = self.finish(before_timers, Some(before_state));
        result.map(|()| effects)
    }

    /// Fires `Expire(b)` (armed for every unfenced broker) or `Heartbeat(b)` (for every fenced
    /// one).
    pub fn fire(&mut self, timer: &Timer) -> Result<Effects, ControllerError> {
        if !self.armed.contains(timer) {
            return Err(ControllerError::TimerNotArmed(timer.clone()));
        }
        let before_timers = self.armed.clone();
        let before_state = self.state.clone();
        match timer {
            Timer::Expire(broker) => {
                *self.fired.entry(timer.kind()).or_insert(0) += 1;
                self.on_expire(*broker)
            }
            // Counted inside: a `Heartbeat` message fires it too.
            Timer::Heartbeat(broker) => self.on_heartbeat_timer(*broker),
            Timer::Lag(_)
            | Timer::FetchRetry
            | Timer::FetchBackoff
            | Timer::ParkedRelease(_)
            | Timer::BrokerHeartbeat
            | Timer::Flush
            | Timer::HwCheckpoint => unreachable!("the controller never arms broker timers"),
        }
        self.restarted.insert(timer.clone());
        Ok(self.finish(before_timers, Some(before_state)))
    }

    pub fn armed_timers(&self) -> &BTreeSet<Timer> {
        &self.armed
    }

    /// What the runtime persists (see the module documentation).
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    pub fn snapshot(&self) -> ControllerSnapshot {
        ControllerSnapshot {
            view: self.state.view.clone(),
            fenced: self.state.fenced.clone(),
            elr: self.state.elr.clone(),
            last_known_leader: self.state.last_known_leader,
            broker_epochs: self.state.broker_epochs.clone(),
            armed_timers: self.armed.clone(),
            timers_fired: self
                .fired
                .iter()
                .map(|(kind, count)| ((*kind).to_owned(), *count))
                .collect(),
        }
    }

    fn dispatch(&mut self, from: PeerId, message: PeerMessage) -> Result<(), ControllerError> {
        let broker = match from {
            PeerId::Broker(broker) if self.config.is_broker(broker) => broker,
            _ => {
                return Err(ControllerError::UnexpectedMessage {
                    from: NodeId::from(from),
                    message: message.name(),
                })
            }
        };
        match message {
            PeerMessage::AlterPartition {
                isr,
                leader_epoch,
                partition_epoch,
                broker_epochs,
            } => {
                let epochs = (leader_epoch, partition_epoch);
                self.on_alter_partition(broker, isr, epochs, &broker_epochs)
            }
            PeerMessage::RegisterBroker { broker_epoch } => {
                self.on_register_broker(broker, broker_epoch);
                Ok(())
            }
            PeerMessage::Heartbeat {
                partition_epoch,
                broker_epoch,
            } => {
                self.on_heartbeat(broker, partition_epoch, broker_epoch);
                Ok(())
            }
            // Broker-bound messages.
            PeerMessage::LeaderAndIsr(_)
            | PeerMessage::AlterPartitionResponse { .. }
            | PeerMessage::RegisterBrokerResponse
            | PeerMessage::Fetch { .. }
            | PeerMessage::FetchResponse { .. }
            | PeerMessage::OffsetsForLeaderEpoch { .. }
            | PeerMessage::OffsetsForLeaderEpochResponse { .. } => {
                Err(ControllerError::UnexpectedMessage {
                    from: NodeId::from(from),
                    message: message.name(),
                })
            }
        }
    }

    fn send(&mut self, to: BrokerId, message: PeerMessage) {
        self.outbox
            .push(Outgoing::Peer(PeerId::Broker(to), message));
    }

    /// Sends the current view to every broker, in id order.
    fn broadcast_view(&mut self) {
        let brokers = self.config.brokers.clone();
        let mut brokers: Vec<BrokerId> = brokers;
        brokers.sort_unstable();
        for broker in brokers {
            let view = self.state.view.clone();
            self.send(broker, PeerMessage::LeaderAndIsr(view));
        }
    }

    /// Re-arms `Expire(b)` for exactly the unfenced brokers and `Heartbeat(b)` for exactly the
    /// fenced ones, and builds the effects (`arm` also holds the restarted clocks).
    fn finish(
        &mut self,
        before_timers: BTreeSet<Timer>,
        before_state: Option<ControllerState>,
    ) -> Effects {
        self.armed = self
            .config
            .brokers
            .iter()
            .map(|broker| match self.state.fenced.contains(broker) {
                true => Timer::Heartbeat(*broker),
                false => Timer::Expire(*broker),
            })
            .collect();
        let restarted = std::mem::take(&mut self.restarted);
        Effects {
            writes: Vec::new(),
            send: std::mem::take(&mut self.outbox),
            arm: super::timers_to_arm(&before_timers, &self.armed, &restarted),
            cancel: before_timers.difference(&self.armed).cloned().collect(),
            persist_state: before_state.is_some_and(|before| before != self.state),
        }
    }
}
