//! A deterministic in-memory network for the sans-I/O core: one controller, N brokers over
//! `MemLog`, and the test as the client. Messages travel FIFO per (source, target) channel,
//! like TCP connections, and are delivered one at a time by the test or by `run`, which
//! visits channels round-robin in a fixed order. A crash drops the broker's volatile state
//! and every message in flight to or from it (its connections break), keeps what `MemLog`
//! says is durable, and a restart brings it back through `BrokerStart::Restart` with the next
//! broker epoch (the simulator counts restarts, as the runtime's checkpoint does). Like the
//! node runtime, the simulator applies every step's `Effects::writes` to the broker's
//! `MemLog`, in order, before anything else happens (`perform`).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use insync_impl::core::memlog::MemLog;
use insync_impl::core::{
    BrokerCore, BrokerStart, ControllerCore, Effects, ProtocolConfig, ReplicaApply, ReplicaRead,
    Variant,
};
use insync_impl::protocol::{
    Acks, BrokerEpoch, BrokerId, BrokerSnapshot, ClientId, ClientReply, ClientRequest, Offset,
    Outgoing, PeerId, PeerMessage, ProduceResult, Record, RecordId, Timer, View,
};
use insync_impl::storage::FsyncPolicy;

pub const CLIENT: ClientId = 1;
pub const CONTROLLER: PeerId = PeerId::Controller;

pub const fn broker(id: BrokerId) -> PeerId {
    PeerId::Broker(id)
}
/// `run` gives up after this many deliveries: a protocol that never goes quiet is a bug.
const RUN_DELIVERIES_MAX: usize = 100_000;

/// A peer channel; client requests and replies bypass the network.
pub type Channel = (PeerId, PeerId);

pub struct Sim {
    pub config: ProtocolConfig,
    fsync: FsyncPolicy,
    pub controller: ControllerCore,
    brokers: BTreeMap<BrokerId, BrokerCore<MemLog>>,
    crashed: BTreeMap<BrokerId, MemLog>,
    /// Each broker's current broker epoch: its number of restarts.
    broker_epochs: BTreeMap<BrokerId, BrokerEpoch>,
    net: BTreeMap<Channel, VecDeque<PeerMessage>>,
    /// Brokers cut off by `block`: `run` delivers nothing to or from them.
    blocked: BTreeSet<BrokerId>,
    /// Every message delivered so far, in order.
    pub delivered: Vec<(PeerId, PeerId, PeerMessage)>,
    /// Replies that reached the client, in order, with the broker that sent each.
    pub client_inbox: VecDeque<(BrokerId, ClientReply)>,
    cursor: usize,
}

impl Sim {
    pub fn new(variant: Variant, brokers: u32, min_insync_replicas: u32) -> Sim {
        Sim::with(
            variant,
            brokers,
            min_insync_replicas,
            false,
            FsyncPolicy::Always,
        )
    }

    pub fn with(
        variant: Variant,
        brokers: u32,
        min_insync_replicas: u32,
        unclean_leader_election: bool,
        fsync: FsyncPolicy,
    ) -> Sim {
        let config = ProtocolConfig {
            variant,
            unclean_leader_election,
            min_insync_replicas,
            brokers: (1..=brokers).collect(),
        };
        let (controller, _) = ControllerCore::new(config.clone(), None);
        let view = controller.state().view.clone();
        let mut sim = Sim {
            config: config.clone(),
            fsync,
            controller,
            brokers: BTreeMap::new(),
            crashed: BTreeMap::new(),
            broker_epochs: BTreeMap::new(),
            net: BTreeMap::new(),
            blocked: BTreeSet::new(),
            delivered: Vec::new(),
            client_inbox: VecDeque::new(),
            cursor: 0,
        };
        for id in 1..=brokers {
            let start = BrokerStart::Initial(view.clone());
            let (core, effects) = BrokerCore::new(id, config.clone(), MemLog::new(fsync), start)
                .expect("memlog does not fail");
            sim.brokers.insert(id, core);
            sim.perform(PeerId::Broker(id), effects);
        }
        sim
    }

    /// What the runtime does with a step's effects: a broker's writes are applied to its
    /// `MemLog` in order, then the messages are queued.
    fn perform(&mut self, source: PeerId, effects: Effects) {
        if let PeerId::Broker(id) = source {
            let core = self.brokers.get_mut(&id).expect("a running broker stepped");
            let applied = core.storage_mut().apply_all(&effects.writes);
            applied.expect("the core issues only writes the log accepts");
        }
        assert!(
            effects.writes.is_empty() || matches!(source, PeerId::Broker(_)),
            "only a broker writes a replica log"
        );
        for outgoing in effects.send {
            match (outgoing, source) {
                (Outgoing::Client(_, reply), PeerId::Broker(broker)) => {
                    self.client_inbox.push_back((broker, reply))
                }
                (Outgoing::Client(..), PeerId::Controller) => {
                    panic!("the controller has no clients")
                }
                (Outgoing::Peer(target, message), _) => self
                    .net
                    .entry((source, target))
                    .or_default()
                    .push_back(message),
            }
        }
    }

    /// Delivers the head of one channel; false when it is empty.
    pub fn deliver(&mut self, source: PeerId, target: PeerId) -> bool {
        let Some(message) = self
            .net
            .get_mut(&(source, target))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        self.delivered.push((source, target, message.clone()));
        let effects = match target {
            PeerId::Controller => self
                .controller
                .step_peer(source, message)
                .expect("controller step"),
            PeerId::Broker(id) => {
                let core = self
                    .brokers
                    .get_mut(&id)
                    .expect("deliver to a running broker");
                core.step_peer(source, message).expect("broker step")
            }
        };
        self.perform(target, effects);
        true
    }

    /// Channels with a message waiting, in a fixed order.
    pub fn ready_channels(&self) -> Vec<Channel> {
        self.net
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(channel, _)| *channel)
            .collect()
    }

    fn deliverable(&self, (source, target): Channel) -> bool {
        let cut = |node: PeerId| matches!(node, PeerId::Broker(id) if self.blocked.contains(&id));
        !cut(source) && !cut(target)
    }

    /// Delivers messages round-robin over channels until none is deliverable.
    pub fn run(&mut self) {
        for _ in 0..RUN_DELIVERIES_MAX {
            let ready: Vec<Channel> = self
                .ready_channels()
                .into_iter()
                .filter(|channel| self.deliverable(*channel))
                .collect();
            if ready.is_empty() {
                return;
            }
            let (source, target) = ready[self.cursor % ready.len()];
            self.cursor = self.cursor.wrapping_add(1);
            self.deliver(source, target);
        }
        panic!("the network did not go quiet within {RUN_DELIVERIES_MAX} deliveries");
    }

    pub fn block(&mut self, broker: BrokerId) {
        self.blocked.insert(broker);
    }

    pub fn unblock(&mut self, broker: BrokerId) {
        self.blocked.remove(&broker);
    }

    /// The client sends a one-record batch.
    pub fn produce(&mut self, broker: BrokerId, record: RecordId, acks: Acks) {
        let request = ClientRequest::Produce {
            producer_id: record.producer_id,
            first_sequence: record.sequence,
            values: vec![format!("value-{}-{}", record.producer_id, record.sequence).into()],
            acks,
        };
        self.client_send(broker, request);
    }

    pub fn client_send(&mut self, broker: BrokerId, request: ClientRequest) {
        let core = self.brokers.get_mut(&broker).expect("running broker");
        let effects = core.step_client(CLIENT, request).expect("client request");
        self.perform(PeerId::Broker(broker), effects);
    }

    /// The next produce result the client received.
    pub fn next_produce_result(&mut self) -> Option<(RecordId, ProduceResult)> {
        while let Some((_, reply)) = self.client_inbox.pop_front() {
            if let ClientReply::ProduceResponse {
                producer_id,
                first_sequence,
                result,
            } = reply
            {
                let record = RecordId {
                    producer_id,
                    sequence: first_sequence,
                };
                return Some((record, result));
            }
        }
        None
    }

    pub fn fire_broker(&mut self, broker: BrokerId, timer: Timer) {
        let core = self.brokers.get_mut(&broker).expect("running broker");
        let effects = core.fire(&timer).expect("armed timer");
        self.perform(PeerId::Broker(broker), effects);
    }

    pub fn fire_controller(&mut self, timer: Timer) {
        let effects = self.controller.fire(&timer).expect("armed timer");
        self.perform(PeerId::Controller, effects);
    }

    /// Fires a running broker's `BrokerHeartbeat` timer (always armed) and delivers what it
    /// sends the controller at once; returns that message.
    pub fn heartbeat(&mut self, broker: BrokerId) -> PeerMessage {
        let core = self.brokers.get_mut(&broker).expect("running broker");
        let effects = core.fire(&Timer::BrokerHeartbeat).expect("always armed");
        assert!(
            effects.arm.contains(&Timer::BrokerHeartbeat),
            "a new period starts"
        );
        let [Outgoing::Peer(PeerId::Controller, message)] = effects.send.as_slice() else {
            panic!(
                "a heartbeat is one message to the controller: {:?}",
                effects.send
            );
        };
        let message = message.clone();
        let effects = self
            .controller
            .step_peer(PeerId::Broker(broker), message.clone())
            .expect("heartbeat");
        self.perform(PeerId::Controller, effects);
        message
    }

    pub fn crash(&mut self, broker: BrokerId) {
        let core = self.brokers.remove(&broker).expect("running broker");
        self.crashed.insert(broker, core.into_storage().crash());
        let node = PeerId::Broker(broker);
        self.net
            .retain(|(source, target), _| *source != node && *target != node);
    }

    pub fn restart(&mut self, broker: BrokerId) {
        let log = self.crashed.remove(&broker).expect("crashed broker");
        let broker_epoch = self.broker_epochs.entry(broker).or_insert(0);
        *broker_epoch += 1;
        let start = BrokerStart::Restart {
            broker_epoch: *broker_epoch,
        };
        let (core, effects) =
            BrokerCore::new(broker, self.config.clone(), log, start).expect("memlog does not fail");
        self.brokers.insert(broker, core);
        self.perform(PeerId::Broker(broker), effects);
    }

    pub fn is_running(&self, broker: BrokerId) -> bool {
        self.brokers.contains_key(&broker)
    }

    pub fn broker(&self, broker: BrokerId) -> &BrokerCore<MemLog> {
        self.brokers.get(&broker).expect("running broker")
    }

    pub fn broker_mut(&mut self, broker: BrokerId) -> &mut BrokerCore<MemLog> {
        self.brokers.get_mut(&broker).expect("running broker")
    }

    /// Steps a broker directly with a message from `source` (bypassing the network), applies
    /// its writes, and returns its effects (the messages are not queued).
    pub fn step_broker(
        &mut self,
        broker: BrokerId,
        source: PeerId,
        message: PeerMessage,
    ) -> Effects {
        step_applied(self.broker_mut(broker), source, message)
    }

    /// Steps a broker directly with a client request (the reply is not queued), applies its
    /// writes, and returns its effects.
    pub fn step_client(&mut self, broker: BrokerId, request: ClientRequest) -> Effects {
        let core = self.broker_mut(broker);
        let effects = core.step_client(CLIENT, request).expect("client request");
        applied(core, effects)
    }

    pub fn snapshot(&self, broker: BrokerId) -> BrokerSnapshot {
        self.broker(broker)
            .snapshot()
            .expect("memlog does not fail")
    }

    /// The broker's records, running or crashed (its durable log).
    pub fn records(&self, broker: BrokerId) -> Vec<Record> {
        match self.brokers.get(&broker) {
            Some(core) => core.storage().records().to_vec(),
            None => self.crashed[&broker].records().to_vec(),
        }
    }

    pub fn record_ids(&self, broker: BrokerId) -> Vec<RecordId> {
        let id = |record: &Record| RecordId {
            producer_id: record.producer_id,
            sequence: record.sequence,
        };
        self.records(broker).iter().map(id).collect()
    }

    pub fn log_end_offset(&self, broker: BrokerId) -> Offset {
        self.broker(broker).storage().log_end_offset()
    }

    pub fn view(&self) -> View {
        self.controller.state().view.clone()
    }

    /// How many delivered messages match `predicate`.
    pub fn count_delivered(&self, predicate: impl Fn(&PeerMessage) -> bool) -> usize {
        self.delivered
            .iter()
            .filter(|(_, _, message)| predicate(message))
            .count()
    }
}

/// Steps a broker core outside any `Sim` as the runtime would: the input, then its writes
/// applied to the core's `MemLog` in order. Returns the effects.
pub fn step_applied(core: &mut BrokerCore<MemLog>, from: PeerId, message: PeerMessage) -> Effects {
    let effects = core.step_peer(from, message).expect("broker step");
    applied(core, effects)
}

/// Fires an armed timer of a broker core outside any `Sim`, applying its writes.
pub fn fire_applied(core: &mut BrokerCore<MemLog>, timer: &Timer) -> Effects {
    let effects = core.fire(timer).expect("armed timer");
    applied(core, effects)
}

/// Applies a step's writes to the core's `MemLog` in order, as the runtime would.
fn applied(core: &mut BrokerCore<MemLog>, effects: Effects) -> Effects {
    let applied = core.storage_mut().apply_all(&effects.writes);
    applied.expect("the core issues only writes the log accepts");
    effects
}

/// Record ids in tests: producer `producer`, sequence `sequence`.
pub fn rid(producer: u64, sequence: u32) -> RecordId {
    RecordId {
        producer_id: producer,
        sequence,
    }
}

pub fn isr(members: &[BrokerId]) -> BTreeSet<BrokerId> {
    members.iter().copied().collect()
}
