//! The broker's state machine (docs/protocol.md §2 "Broker", §4.1–§4.9).
//!
//! A broker is leader, follower, or (with no leader in its view, or before its first view)
//! neither. Leader state lives in `LeaderState` and exists only while the installed view names
//! this broker as leader; follower state is the single `fetch_state`. One file per message
//! family holds the handler rules:
//!
//! - `leader_and_isr`: installing a view, becoming leader or follower (§4.1);
//! - `fetch`: the leader's side of `Fetch`, parked fetches (§4.2);
//! - `fetch_response`: the follower's side (§4.3);
//! - `epoch_lookup`: `OffsetsForLeaderEpoch`, both sides (§4.4, `kip-101`/`kip-279`);
//! - `produce`, `producers`: `Produce` and the idempotent-producer table (§4.5);
//! - `consume` (§4.6), `high_watermark` (§4.7), `lag` (§4.8), `alter_partition` (§4.9);
//! - `durability`: the `Flush` and `HwCheckpoint` timers (§2);
//! - `timers`: the timers that end a wait, `FetchRetry`, `FetchBackoff`, `ParkedRelease(f)`
//!   and `BrokerHeartbeat` (§4.12).
//!
//! Every handler appends the messages it emits to `outbox` in protocol order and stages the
//! writes it needs in `staged` (reading the log through them: `log()`); `finish` turns the
//! outbox, the staged writes and the change in armed timers (and the clocks to restart) into
//! the step's `Effects`. Time is never read here: a deadline that passes is `fire(timer)`; and
//! storage is never written here: a write is an effect (`core::storage`).

mod alter_partition;
mod consume;
mod durability;
mod epoch_lookup;
mod fetch;
mod fetch_response;
mod high_watermark;
mod lag;
mod leader_and_isr;
mod produce;
mod producers;
mod timers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::staged::{Overlay, Staged};
use super::{CoreError, Effects, ProtocolConfig, ReplicaRead};
use crate::protocol::{
    BrokerEpoch, BrokerId, BrokerSnapshot, ClientId, ClientReply, ClientRequest, Epoch, FetchState,
    NodeId, Offset, Outgoing, PeerId, PeerMessage, Record, RecordId, ReplicaProgress, Timer, View,
};
use producers::ProducerTable;

/// How a broker process starts (docs/protocol.md §2 "Initial state").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerStart {
    /// First start of a fresh cluster: broker epoch 0, registered; the broker has installed
    /// this view already; a follower sends its first `Fetch`.
    Initial(View),
    /// Restart from a data directory with the new `broker_epoch` (the runtime has made it
    /// durable: one more than the previous incarnation's). No view; the broker sends
    /// `RegisterBroker { broker_epoch }` and ignores `LeaderAndIsr` until the controller's
    /// `RegisterBrokerResponse` (KIP-903).
    Restart { broker_epoch: BrokerEpoch },
}

/// What the leader knows about one follower (docs/protocol.md §2 `ReplicaProgress`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Replica {
    /// The follower's LEO as of its last fetch in this leader epoch.
    fetch_offset: Option<Offset>,
    /// The HW last sent to it.
    hw_sent: Offset,
    /// The leader epoch of the fetch being held, when one is parked. A parked answer echoes
    /// the request's epoch, which differs from the leader's own only in the variants that do
    /// not fence fetches.
    parked_epoch: Option<Epoch>,
    /// The broker epoch of its last fetch (KIP-903): an ISR expansion names it, so the
    /// controller refuses to add a broker on the strength of an earlier incarnation's fetch.
    broker_epoch: BrokerEpoch,
    /// The leader's LEO when it last answered this follower: a fetch at or past it means the
    /// follower caught up, which restarts `Lag(f)`'s clock (§4.8).
    end_offset_sent: Offset,
}

/// One acks=all produce request waiting for the HW.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiting {
    client: ClientId,
    /// The batch's first record id, as in the request.
    record_id: RecordId,
    base_offset: Offset,
    /// The offset of the batch's last record: the request is answered once the HW passes it.
    last_offset: Offset,
}

/// State held only while this broker is the leader of its installed view.
#[derive(Clone, Debug)]
struct LeaderState {
    leader_epoch_start_offset: Offset,
    replicas: BTreeMap<BrokerId, Replica>,
    /// The ISR proposed by the `AlterPartition` in flight, at most one.
    pending_isr: Option<BTreeSet<BrokerId>>,
    /// Bounded by `WAITING_REQUESTS_MAX`.
    waiting: VecDeque<Waiting>,
}

/// The broker's protocol core. See the module documentation.
pub struct BrokerCore<L: ReplicaRead> {
    id: BrokerId,
    config: ProtocolConfig,
    /// The replica as the runtime last left it: read, never written, by the core.
    storage: L,
    /// The writes of the input being handled, which `log()` reads through; drained by
    /// `finish`.
    staged: Staged,
    /// How many times this broker restarted (KIP-903).
    broker_epoch: BrokerEpoch,
    /// False from a restart until the controller's `RegisterBrokerResponse` (§4.1 step 0).
    registered: bool,
    view: Option<View>,
    hw: Offset,
    leader: Option<LeaderState>,
    fetch_state: FetchState,
    producers: ProducerTable,
    armed: BTreeSet<Timer>,
    /// Timers whose clock the input being handled restarts, if still armed; drained by
    /// `finish`.
    restarted: BTreeSet<Timer>,
    /// How many times each timer kind fired (observability: `BrokerSnapshot::timers_fired`).
    fired: BTreeMap<&'static str, u64>,
    /// Messages emitted by the input being handled, in order; drained by `finish`.
    outbox: Vec<Outgoing>,
}

type BrokerResult<T, L> = Result<T, CoreError<<L as ReplicaRead>::Error>>;

impl<L: ReplicaRead> BrokerCore<L> {
    /// Starts a broker over `storage` (already recovered from disk). On restart the HW is the
    /// checkpoint clamped to the recovered LEO, and the producer table is rebuilt from the log.
    pub fn new(
        id: BrokerId,
        config: ProtocolConfig,
        storage: L,
        start: BrokerStart,
    ) -> BrokerResult<(Self, Effects), L> {
        assert!(
            config.is_broker(id),
            "broker {id} is not in the replica set"
        );
        let hw = storage
            .high_watermark_checkpoint()
            .min(storage.log_end_offset());
        let producers = ProducerTable::rebuild(&storage).map_err(CoreError::Storage)?;
        let (broker_epoch, registered) = match &start {
            BrokerStart::Initial(_) => (0, true),
            BrokerStart::Restart { broker_epoch } => (*broker_epoch, false),
        };
        let mut core = BrokerCore {
            id,
            config,
            storage,
            staged: Staged::default(),
            broker_epoch,
            registered,
            view: None,
            hw,
            leader: None,
            fetch_state: FetchState::Idle,
            producers,
            armed: BTreeSet::new(),
            restarted: BTreeSet::new(),
            fired: BTreeMap::new(),
            outbox: Vec::new(),
        };
        let before = core.armed.clone();
        match start {
            BrokerStart::Initial(view) => {
                core.validate_view(NodeId::Controller, &view)?;
                core.install_view(view)?;
            }
            BrokerStart::Restart { broker_epoch } => core.send(
                PeerId::Controller,
                PeerMessage::RegisterBroker { broker_epoch },
            ),
        }
        let effects = core.finish(before);
        Ok((core, effects))
    }

    /// Handles one message from the controller or another broker. A message that makes no
    /// sense from `from` is an error (the runtime closes that connection); fencing outcomes are
    /// responses.
    pub fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> BrokerResult<Effects, L> {
        self.handle(|core| core.dispatch_peer(from, message))
    }

    /// Handles one request from a client connection (§4.5, §4.6).
    pub fn step_client(
        &mut self,
        client: ClientId,
        request: ClientRequest,
    ) -> BrokerResult<Effects, L> {
        self.handle(|core| core.dispatch_client(client, request))
    }

    /// Runs one input's handler and turns what it did into the input's `Effects`. The runtime
    /// must have applied the previous input's writes (asserted).
    fn handle(
        &mut self,
        dispatch: impl FnOnce(&mut Self) -> BrokerResult<(), L>,
    ) -> BrokerResult<Effects, L> {
        self.staged.assert_applied(&self.storage);
        let before = self.armed.clone();
        debug_assert!(
            self.outbox.is_empty(),
            "outbox left over from an earlier input"
        );
        self.outbox.clear();
        let result = dispatch(self);
        let effects = self.finish(before);
        debug_assert!(
            !matches!(result, Err(CoreError::InvalidRequest { .. })) || effects.writes.is_empty(),
            "an input is refused before it writes anything"
        );
        result.map(|()| effects)
    }

    fn dispatch_peer(&mut self, from: PeerId, message: PeerMessage) -> BrokerResult<(), L> {
        match message {
            PeerMessage::RegisterBrokerResponse => {
                self.expect_controller(from, "RegisterBrokerResponse")?;
                self.registered = true;
                Ok(())
            }
            PeerMessage::LeaderAndIsr(view) => {
                self.expect_controller(from, "LeaderAndIsr")?;
                self.validate_view(NodeId::from(from), &view)?;
                self.on_leader_and_isr(view)
            }
            PeerMessage::AlterPartitionResponse { result } => {
                self.expect_controller(from, "AlterPartitionResponse")?;
                self.on_alter_partition_response(result)
            }
            PeerMessage::Fetch {
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                broker_epoch,
            } => {
                let follower = self.expect_replica(from, "Fetch")?;
                let request = fetch::FetchRequest {
                    leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    broker_epoch,
                };
                self.on_fetch(follower, request)
            }
            PeerMessage::FetchResponse {
                leader_epoch,
                fetch_offset,
                result,
            } => {
                let sender = self.expect_replica(from, "FetchResponse")?;
                self.on_fetch_response(sender, (leader_epoch, fetch_offset), result)
            }
            PeerMessage::OffsetsForLeaderEpoch { requested_epoch } => {
                let follower = self.expect_replica(from, "OffsetsForLeaderEpoch")?;
                self.expect_epoch_lookup(from, "OffsetsForLeaderEpoch")?;
                self.on_offsets_for_leader_epoch(follower, requested_epoch)
            }
            PeerMessage::OffsetsForLeaderEpochResponse { result } => {
                let sender = self.expect_replica(from, "OffsetsForLeaderEpochResponse")?;
                self.expect_epoch_lookup(from, "OffsetsForLeaderEpochResponse")?;
                self.on_offsets_for_leader_epoch_response(sender, result)
            }
            // Controller-bound messages.
            PeerMessage::AlterPartition { .. }
            | PeerMessage::RegisterBroker { .. }
            | PeerMessage::Heartbeat { .. } => Err(CoreError::UnexpectedMessage {
                from: NodeId::from(from),
                message: message.name(),
            }),
        }
    }

    fn dispatch_client(&mut self, client: ClientId, request: ClientRequest) -> BrokerResult<(), L> {
        match request {
            ClientRequest::Produce {
                producer_id,
                first_sequence,
                values,
                acks,
            } => {
                let request = produce::ProduceRequest {
                    client,
                    producer_id,
                    first_sequence,
                    values,
                    acks,
                };
                self.on_produce(request)
            }
            ClientRequest::Consume {
                fetch_offset,
                max_records,
            } => self.on_consume(client, fetch_offset, max_records),
        }
    }

    /// Fires an armed timer: `Lag(f)` (§4.8), `Flush` or `HwCheckpoint` (§2), or one of
    /// §4.12's. A timer still armed after it fired starts a new period (§2 "Timers").
    pub fn fire(&mut self, timer: &Timer) -> BrokerResult<Effects, L> {
        self.staged.assert_applied(&self.storage);
        if !self.armed.contains(timer) {
            return Err(CoreError::TimerNotArmed(timer.clone()));
        }
        let before = self.armed.clone();
        *self.fired.entry(timer.kind()).or_insert(0) += 1;
        let result = match timer {
            Timer::Lag(follower) => {
                self.on_lag(*follower);
                Ok(())
            }
            Timer::FetchRetry => {
                self.on_fetch_retry();
                Ok(())
            }
            Timer::FetchBackoff => {
                self.on_fetch_backoff();
                Ok(())
            }
            Timer::ParkedRelease(follower) => self.on_parked_release(*follower),
            Timer::BrokerHeartbeat => {
                self.on_broker_heartbeat();
                Ok(())
            }
            Timer::Flush => self.on_flush(),
            Timer::HwCheckpoint => self.on_hw_checkpoint(),
            Timer::Expire(_) | Timer::Heartbeat(_) => {
                unreachable!("a broker never arms controller timers")
            }
        };
        self.restart(timer.clone());
        let effects = self.finish(before);
        result.map(|()| effects)
    }

    pub fn armed_timers(&self) -> &BTreeSet<Timer> {
        &self.armed
    }

    pub fn id(&self) -> BrokerId {
        self.id
    }

    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    pub fn high_watermark(&self) -> Offset {
        self.hw
    }

    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }

    pub fn broker_epoch(&self) -> BrokerEpoch {
        self.broker_epoch
    }

    /// False from a restart until the controller answered its registration.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The stored replica, as the runtime last left it.
    pub fn storage(&self) -> &L {
        &self.storage
    }

    /// For the runtime to apply `Effects::writes` (`ReplicaApply`), in order, before the next
    /// input; the core itself only reads.
    pub fn storage_mut(&mut self) -> &mut L {
        &mut self.storage
    }

    /// Consumes the core, giving back its storage (a crash or shutdown in tests).
    pub fn into_storage(self) -> L {
        self.storage
    }

    /// The log as the core reads it: the stored replica through the writes staged by the
    /// input being handled.
    fn log(&self) -> Overlay<'_, L> {
        Overlay::new(&self.storage, &self.staged)
    }

    /// Observable state with the model's field names. Reads the whole log, so it is meant for
    /// inspection (the harness, operators), not for the data path.
    pub fn snapshot(&self) -> BrokerResult<BrokerSnapshot, L> {
        let log = self.read_log_summary()?;
        Ok(BrokerSnapshot {
            log,
            ..self.snapshot_without_log()
        })
    }

    /// [`Self::snapshot`] with `log` left empty: cheap enough for every input (trace logs,
    /// `trace_log::event`), since it reads nothing from storage.
    pub fn snapshot_without_log(&self) -> BrokerSnapshot {
        self.staged.assert_applied(&self.storage);
        let leader = self.leader.as_ref();
        let replicas = leader
            .map(|state| {
                let progress = |replica: &Replica| ReplicaProgress {
                    fetch_offset: replica.fetch_offset,
                    hw_sent: replica.hw_sent,
                    parked: replica.parked_epoch.is_some(),
                    broker_epoch: replica.broker_epoch,
                };
                state
                    .replicas
                    .iter()
                    .map(|(id, r)| (*id, progress(r)))
                    .collect()
            })
            .unwrap_or_default();
        BrokerSnapshot {
            id: self.id,
            broker_epoch: self.broker_epoch,
            registered: self.registered,
            view: self.view.clone(),
            log: Vec::new(),
            log_end_offset: self.log().log_end_offset(),
            hw: self.hw,
            durable_end_offset: self.log().durable_end_offset(),
            hw_checkpoint: self.log().high_watermark_checkpoint(),
            leader_epoch_start_offset: leader.map(|state| state.leader_epoch_start_offset),
            replicas,
            pending_isr: leader.and_then(|state| state.pending_isr.clone()),
            waiting: leader
                .map(|state| {
                    state
                        .waiting
                        .iter()
                        .map(|w| (w.record_id, w.last_offset))
                        .collect()
                })
                .unwrap_or_default(),
            fetch_state: self.fetch_state,
            armed_timers: self.armed.clone(),
            timers_fired: self
                .fired
                .iter()
                .map(|(kind, count)| ((*kind).to_owned(), *count))
                .collect(),
        }
    }

    fn read_log_summary(&self) -> BrokerResult<Vec<(Offset, Epoch, RecordId)>, L> {
        let end = self.log().log_end_offset();
        let mut summary = Vec::new();
        let mut next = 0;
        // Bounded: each round reads at least one record, and there are `end` of them.
        while next < end {
            let records = self
                .log()
                .read(next, FETCH_READ_CHUNK)
                .map_err(CoreError::Storage)?;
            assert!(
                !records.is_empty(),
                "log read at {next} below LEO {end} returned nothing"
            );
            for record in &records {
                summary.push((record.offset, record.leader_epoch, record_id(record)));
            }
            next = records.last().map_or(end, |record| record.offset + 1);
        }
        Ok(summary)
    }

    // ----- shared helpers -------------------------------------------------------------------

    fn send(&mut self, to: PeerId, message: PeerMessage) {
        self.outbox.push(Outgoing::Peer(to, message));
    }

    fn reply(&mut self, client: ClientId, reply: ClientReply) {
        self.outbox.push(Outgoing::Client(client, reply));
    }

    /// Drains the outbox, recomputes the armed timers and diffs them against `before`: `arm`
    /// holds the newly armed ones and the armed ones whose clock restarts.
    fn finish(&mut self, before: BTreeSet<Timer>) -> Effects {
        self.refresh_lag_timers();
        self.refresh_durability_timers();
        self.refresh_wait_timers();
        let restarted = std::mem::take(&mut self.restarted);
        Effects {
            writes: self.staged.take_writes(&self.storage),
            send: std::mem::take(&mut self.outbox),
            arm: super::timers_to_arm(&before, &self.armed, &restarted),
            cancel: before.difference(&self.armed).cloned().collect(),
            persist_state: false,
        }
    }

    /// Stages an append of records that continue the log (followed by a flush under
    /// `fsync = always`, §2) and accounts for them in the producer table.
    fn append_records(&mut self, records: Vec<Record>) {
        self.producers.observe(&records);
        self.staged.append(&self.storage, records);
    }

    /// Sets the HW in memory; the checkpoint follows when `HwCheckpoint` fires (§2).
    fn set_high_watermark(&mut self, hw: Offset) -> BrokerResult<(), L> {
        assert!(
            hw <= self.log().log_end_offset(),
            "HW {hw} above LEO {}",
            self.log().log_end_offset()
        );
        self.hw = hw;
        Ok(())
    }

    /// Truncates the log to `offset`, trims the producer table to match, and clamps the HW to
    /// the new LEO (a HW above the LEO would claim records the broker no longer holds).
    fn truncate_log(&mut self, offset: Offset) -> BrokerResult<(), L> {
        if offset >= self.log().log_end_offset() {
            return Ok(());
        }
        self.staged.truncate(&self.storage, offset);
        assert_eq!(
            self.log().log_end_offset(),
            offset,
            "a staged truncation left a different LEO"
        );
        self.producers.truncate(offset);
        self.set_high_watermark(self.hw.min(offset))
    }

    /// The end of `epoch` in this broker's own log: where the largest epoch <= `epoch` ends,
    /// or 0 when the log has none (the log starts at offset 0).
    fn own_end_offset_for_epoch(&self, epoch: Epoch) -> Offset {
        self.log()
            .end_offset_for_epoch(epoch)
            .map_or(0, |(_, end)| end)
    }

    fn leader_state(&self) -> &LeaderState {
        self.leader.as_ref().expect("leader state required")
    }

    fn leader_state_mut(&mut self) -> &mut LeaderState {
        self.leader.as_mut().expect("leader state required")
    }

    fn installed_view(&self) -> &View {
        self.view.as_ref().expect("a view is installed")
    }

    // ----- sender checks --------------------------------------------------------------------

    // Which peer may send which message: the controller's to a broker come from the
    // controller, replication messages from another broker of the replica set.

    fn expect_controller(&self, from: PeerId, message: &'static str) -> BrokerResult<(), L> {
        match from {
            PeerId::Controller => Ok(()),
            PeerId::Broker(_) => Err(CoreError::UnexpectedMessage {
                from: NodeId::from(from),
                message,
            }),
        }
    }

    fn expect_replica(&self, from: PeerId, message: &'static str) -> BrokerResult<BrokerId, L> {
        match from {
            PeerId::Broker(peer) if peer != self.id && self.config.is_broker(peer) => Ok(peer),
            _ => Err(CoreError::UnexpectedMessage {
                from: NodeId::from(from),
                message,
            }),
        }
    }

    fn expect_epoch_lookup(&self, from: PeerId, message: &'static str) -> BrokerResult<(), L> {
        if self.config.variant.uses_epoch_lookup() {
            Ok(())
        } else {
            Err(CoreError::UnexpectedMessage {
                from: NodeId::from(from),
                message,
            })
        }
    }

    fn validate_view(&self, from: NodeId, view: &View) -> BrokerResult<(), L> {
        let known = |id: &BrokerId| self.config.is_broker(*id);
        if !view.isr.iter().all(known) || !view.leader.iter().all(known) {
            return Err(CoreError::InvalidRequest {
                from,
                message: "LeaderAndIsr",
                reason: "the view names a broker outside the replica set",
            });
        }
        Ok(())
    }
}

/// Records read per call when the broker walks its whole log (snapshot, producer rebuild).
const FETCH_READ_CHUNK: usize = 4096;

/// A record's protocol identity.
pub(crate) fn record_id(record: &crate::protocol::Record) -> RecordId {
    RecordId {
        producer_id: record.producer_id,
        sequence: record.sequence,
    }
}
