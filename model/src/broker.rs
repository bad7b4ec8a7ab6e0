//! The broker: leader or follower of the one partition (docs/protocol.md §4.1–4.9).
//!
//! Followers pull with `Fetch` (one request in flight). The leader long-polls: a fetch that
//! would return nothing new is parked and answered when the LEO or HW moves. Three timers end a
//! wait (§4.12): `FetchRetry` re-sends a request in flight (the answer may be lost, or merely
//! slow: then two are in flight), `FetchBackoff` resumes a follower stopped by a fencing
//! answer, and `ParkedRelease(f)` answers a parked fetch with what there is. Divergence after a leader change is resolved per variant: the leader detects it
//! (KIP-320/KIP-279 `DivergingEpoch`, `kip-966` and `kip-320`), the follower looks the epoch up
//! first (KIP-101, KIP-279), or the follower truncates to its own HW (before KIP-101). The HW is
//! the minimum LEO over the maximal ISR and, in `kip-966`, moves only while the ISR has at least
//! `min_insync_replicas` members (KIP-966).
//!
//! Durability (§2): the broker knows what it has saved, `flushed` (the durable end of its log)
//! and `hw_checkpoint`. Under `fsync = always` every append is saved before anything is sent;
//! under `lazy` (Kafka's default) an append waits for the `Flush` timer, so a crash loses what
//! came after the last flush. A truncation is always saved. The HW checkpoint lags the HW
//! until the `HwCheckpoint` timer fires. A restarted broker holds no view and ignores
//! `LeaderAndIsr` until the controller answers its `RegisterBroker`.

use crate::actor::{Out, Storage};
use crate::config::{Acks, Config, Fsync, Variant};
use crate::msg::{FetchResult, Msg, OffsetsForLeaderEpochResult, ProduceResult, Timer};
use crate::types::{epochs, BrokerId, BrokerSet, Epoch, Offset, Record, RecordId, View};
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};
use std::collections::{BTreeMap, BTreeSet};

/// A follower's fetch state: one request in flight at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FetchState {
    Idle,
    /// An `OffsetsForLeaderEpoch` is in flight (`kip-101`, `kip-279`).
    Truncating,
    /// A `Fetch` is in flight.
    Fetching,
}

/// What the leader knows of one follower in its leader epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ReplicaProgress {
    /// The follower's LEO as of its last fetch in this leader epoch.
    pub fetch_offset: Option<Offset>,
    /// The HW last sent to it.
    pub hw_sent: Offset,
    /// A fetch from it is being held until the LEO or HW moves: the leader epoch that fetch
    /// carried, which its answer echoes (§4.2, as every `FetchResponse` does).
    pub parked: Option<Epoch>,
    /// The broker epoch of its last fetch (KIP-903).
    pub broker_epoch: u8,
}

/// State only a leader holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LeaderState {
    /// The LEO when it became leader of this epoch.
    pub leader_epoch_start_offset: Offset,
    pub replicas: BTreeMap<BrokerId, ReplicaProgress>,
    /// The ISR proposed by the `AlterPartition` in flight.
    pub pending_isr: Option<BrokerSet>,
    /// `acks=all` produce requests waiting for the HW: `(record_id, offset)`.
    pub waiting: Vec<(RecordId, Offset)>,
}

/// A broker's state; field names as in docs/protocol.md §2.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BrokerState {
    /// How many times it restarted (KRaft's broker epoch; the model's incarnation number).
    pub broker_epoch: u8,
    /// False from a restart until the controller answers `RegisterBroker`.
    pub registered: bool,
    /// The newest view it has installed.
    pub view: Option<View>,
    pub log: Vec<Record>,
    pub hw: Offset,
    /// The durable end of the log: a crash keeps `log[..flushed]` (§2).
    pub flushed: Offset,
    /// The HW as last saved; a restart starts from it, clamped to the recovered LEO (§2).
    pub hw_checkpoint: Offset,
    /// Present while it acts as leader.
    pub leader: Option<LeaderState>,
    pub fetch_state: FetchState,
}

/// What survives a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct BrokerStorage {
    /// The durable log: the volatile log up to `flushed`.
    pub log: Vec<Record>,
    /// The HW checkpoint.
    pub hw: Offset,
    /// How many times the broker restarted (KRaft's broker epoch).
    pub broker_epoch: u8,
}

impl BrokerState {
    pub fn leo(&self) -> Offset {
        self.log.len() as Offset
    }
    /// It acts as leader: it holds leader state for the view it installed.
    pub fn is_leader(&self) -> bool {
        self.leader.is_some()
    }
    fn fetch_request(&self) -> Msg {
        let view = self.view.expect("a follower holds a view");
        Msg::Fetch {
            leader_epoch: view.leader_epoch,
            fetch_offset: self.leo(),
            last_fetched_epoch: epochs::last_epoch(&self.log),
            broker_epoch: self.broker_epoch,
        }
    }
    /// Removes the records at `offset` and after. Durable at once, and since the
    /// implementation fsyncs the whole file to make it so, what is left is durable too (§2).
    /// The HW is clamped to the new LEO in memory only: the checkpoint lags until
    /// `HwCheckpoint` fires.
    fn truncate(&mut self, offset: Offset) {
        if offset < self.leo() {
            self.log.truncate(offset as usize);
            self.flushed = offset;
        }
        self.hw = self.hw.min(self.leo());
    }
    /// Whether `Flush` and whether `HwCheckpoint` should be armed (§2).
    pub fn durability_timers(&self) -> (bool, bool) {
        (self.flushed < self.leo(), self.hw_checkpoint != self.hw)
    }
    /// What a crash now would keep.
    pub fn storage(&self) -> BrokerStorage {
        BrokerStorage {
            log: self.log[..self.flushed as usize].to_vec(),
            hw: self.hw_checkpoint,
            broker_epoch: self.broker_epoch,
        }
    }
    /// Every broker timer that should be armed: `Lag(f)` (§4.8), the wait timers of §4.12
    /// and the durability timers of §2.
    pub fn timers(&self) -> BTreeSet<Timer> {
        let mut timers: BTreeSet<Timer> = self.lag_timers().iter().map(Timer::Lag).collect();
        if self.follows_leader() {
            timers.insert(match self.fetch_state {
                FetchState::Fetching | FetchState::Truncating => Timer::FetchRetry,
                FetchState::Idle => Timer::FetchBackoff,
            });
        }
        if let Some(leader) = &self.leader {
            let parked = leader.replicas.iter().filter(|(_, p)| p.parked.is_some());
            timers.extend(parked.map(|(f, _)| Timer::ParkedRelease(*f)));
        }
        let (flush, hw_checkpoint) = self.durability_timers();
        if flush {
            timers.insert(Timer::Flush);
        }
        if hw_checkpoint {
            timers.insert(Timer::HwCheckpoint);
        }
        timers
    }
    /// Its view names a leader and it is not that leader (a leader always holds leader state).
    fn follows_leader(&self) -> bool {
        self.leader.is_none() && self.view.is_some_and(|v| v.leader.is_some())
    }
    /// The `Lag(f)` timers that should be armed (§4.8).
    pub fn lag_timers(&self) -> BrokerSet {
        let (Some(leader), Some(view)) = (&self.leader, &self.view) else {
            return BrokerSet::empty();
        };
        if leader.pending_isr.is_some() {
            return BrokerSet::empty();
        }
        leader
            .replicas
            .iter()
            .filter(|(f, p)| {
                view.isr.contains(**f) && p.fetch_offset.is_none_or(|o| o < self.leo())
            })
            .fold(BrokerSet::empty(), |set, (f, _)| set.with(*f))
    }
}

impl Rewrite<Id> for BrokerState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        BrokerState {
            view: self.view.map(|v| v.rewrite(plan)),
            leader: self.leader.as_ref().map(|l| LeaderState {
                replicas: l
                    .replicas
                    .iter()
                    .map(|(f, p)| (f.rewrite(plan), *p))
                    .collect(),
                pending_isr: l.pending_isr.map(|s| s.rewrite(plan)),
                ..l.clone()
            }),
            ..self.clone()
        }
    }
}

/// The broker actor's behaviour; `id` is its own broker id.
#[derive(Clone, Debug)]
pub struct Broker {
    pub id: BrokerId,
    pub cfg: Config,
}

/// Where messages go.
fn controller() -> Id {
    Id::from(0)
}

impl Broker {
    fn client(&self) -> Id {
        Id::from(self.cfg.client_index())
    }

    /// First start (no storage): the initial view is installed; followers fetch from broker 1.
    /// Restart: recover the durable log and HW, send `RegisterBroker`, wait for a view.
    pub fn on_start(&self, storage: Option<&BrokerStorage>, out: &mut Out) -> BrokerState {
        match storage {
            None => {
                let view = View::initial(self.cfg.brokers);
                let mut state = BrokerState {
                    broker_epoch: 0,
                    registered: true,
                    view: None,
                    log: Vec::new(),
                    hw: 0,
                    flushed: 0,
                    hw_checkpoint: 0,
                    leader: None,
                    fetch_state: FetchState::Idle,
                };
                self.install(&mut state, view, out);
                out.save(Storage::Broker(state.storage()));
                state
            }
            // Opening fsyncs the recovered log and saves the clamped HW checkpoint.
            Some(storage) => {
                let leo = storage.log.len() as Offset;
                let hw = storage.hw.min(leo);
                let broker_epoch = storage.broker_epoch + 1;
                let state = BrokerState {
                    broker_epoch,
                    registered: false,
                    view: None,
                    log: storage.log.clone(),
                    hw,
                    flushed: leo,
                    hw_checkpoint: hw,
                    leader: None,
                    fetch_state: FetchState::Idle,
                };
                out.save(Storage::Broker(state.storage()));
                out.send(controller(), Msg::RegisterBroker { broker_epoch });
                state
            }
        }
    }

    /// Dispatch one message; one arm per message, guards are the protocol's acceptance tests.
    pub fn on_msg(&self, state: &mut BrokerState, src: Id, msg: Msg, out: &mut Out) {
        match msg {
            Msg::RegisterBrokerResponse if src == controller() => state.registered = true,
            // A view from before this incarnation registered, or an old one: ignore (§4.1.1).
            Msg::LeaderAndIsr(view)
                if !state.registered
                    || state
                        .view
                        .is_some_and(|v| v.partition_epoch >= view.partition_epoch) => {}
            Msg::LeaderAndIsr(view) => self.install(state, view, out),
            Msg::AlterPartitionResponse { result } => self.on_alter_response(state, result, out),
            Msg::Fetch {
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                broker_epoch,
            } => {
                let follower = (BrokerId::from_id(src), broker_epoch);
                self.on_fetch(
                    state,
                    follower,
                    leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    out,
                )
            }
            // Responses from anyone but the leader of its view, for another epoch, or for a fetch
            // other than the one it would send now (an answer to a fetch its previous
            // incarnation sent, which a leader held parked across the crash): stale (§4.3).
            Msg::FetchResponse {
                leader_epoch,
                fetch_offset,
                ..
            } if state.fetch_state != FetchState::Fetching
                || fetch_offset != state.leo()
                || !state.view.is_some_and(|v| {
                    v.leader == Some(BrokerId::from_id(src)) && v.leader_epoch == leader_epoch
                }) => {}
            Msg::FetchResponse { result, .. } => self.on_fetch_response(state, src, result, out),
            Msg::OffsetsForLeaderEpoch { requested_epoch } => {
                let result = self.epoch_lookup(state, requested_epoch);
                out.send(src, Msg::OffsetsForLeaderEpochResponse { result });
            }
            Msg::OffsetsForLeaderEpochResponse { .. }
                if state.fetch_state != FetchState::Truncating
                    || state
                        .view
                        .is_none_or(|v| v.leader != Some(BrokerId::from_id(src))) => {}
            Msg::OffsetsForLeaderEpochResponse { result } => {
                self.on_epoch_response(state, src, result, out)
            }
            Msg::Produce { record_id, acks } => self.on_produce(state, record_id, acks, out),
            Msg::Consume { fetch_offset } => {
                let result = match &state.leader {
                    None => crate::msg::ConsumeResult::NotLeader,
                    Some(_) => crate::msg::ConsumeResult::Ok {
                        records: state.log[fetch_offset.min(state.hw) as usize..state.hw as usize]
                            .to_vec(),
                        high_watermark: state.hw,
                    },
                };
                out.send(src, Msg::ConsumeResponse { result });
            }
            // Messages a broker never receives (controller- or client-bound).
            Msg::RegisterBrokerResponse
            | Msg::AlterPartition { .. }
            | Msg::RegisterBroker { .. }
            | Msg::ProduceResponse { .. }
            | Msg::ConsumeResponse { .. } => {}
        }
    }

    /// A broker timer fired: `Flush` and `HwCheckpoint` save (§2), `Lag(f)` proposes a
    /// shrink (§4.8), the others end a wait (§4.12).
    pub fn on_timeout(&self, state: &mut BrokerState, timer: Timer, out: &mut Out) {
        if !state.timers().contains(&timer) {
            return;
        }
        match timer {
            Timer::Lag(follower) => self.on_lag(state, follower, out),
            Timer::FetchRetry => self.on_fetch_retry(state, out),
            Timer::FetchBackoff => self.on_fetch_backoff(state, out),
            Timer::ParkedRelease(follower) => self.on_parked_release(state, follower, out),
            Timer::Flush => state.flushed = state.leo(),
            Timer::HwCheckpoint => state.hw_checkpoint = state.hw,
            Timer::Expire(_) | Timer::Heartbeat(_) | Timer::Produce(_) | Timer::Consume(_) => {}
        }
    }

    /// `FetchRetry`: send the request in flight again, unchanged; both may now be answered,
    /// and the echo rule (§4.3) applies only the answer to the fetch it would send now.
    fn on_fetch_retry(&self, state: &mut BrokerState, out: &mut Out) {
        let leader = state
            .view
            .and_then(|v| v.leader)
            .expect("a follower's leader");
        match state.fetch_state {
            FetchState::Truncating => {
                let requested_epoch = epochs::last_epoch(&state.log);
                out.send(leader.id(), Msg::OffsetsForLeaderEpoch { requested_epoch });
            }
            FetchState::Fetching => self.send_fetch(state, leader.id(), out),
            FetchState::Idle => unreachable!("FetchRetry is armed only with a request in flight"),
        }
    }

    /// `FetchBackoff`: fetch again as on becoming follower (§4.1 step 3), without
    /// `hw-truncation`'s truncation; the epoch-lookup variants look up again, since the stop
    /// may have answered the lookup itself.
    fn on_fetch_backoff(&self, state: &mut BrokerState, out: &mut Out) {
        let leader = state
            .view
            .and_then(|v| v.leader)
            .expect("a follower's leader");
        if self.cfg.variant.epoch_lookup() && !state.log.is_empty() {
            let requested_epoch = epochs::last_epoch(&state.log);
            out.send(leader.id(), Msg::OffsetsForLeaderEpoch { requested_epoch });
            state.fetch_state = FetchState::Truncating;
        } else {
            self.send_fetch(state, leader.id(), out);
        }
    }

    /// `ParkedRelease(f)`: answer f's parked fetch now, with what there is (no records and an
    /// unchanged HW, or it would not be parked).
    fn on_parked_release(&self, state: &mut BrokerState, follower: BrokerId, out: &mut Out) {
        let hw = state.hw;
        let leader = state
            .leader
            .as_mut()
            .expect("ParkedRelease is armed on a leader");
        let progress = leader
            .replicas
            .get_mut(&follower)
            .expect("every other broker");
        let leader_epoch = progress.parked.take().expect("a parked fetch");
        let fetch_offset = progress
            .fetch_offset
            .expect("a parked fetch recorded progress");
        progress.hw_sent = hw;
        send_records(out, &state.log, follower, leader_epoch, fetch_offset, hw);
    }

    /// `Lag(f)` fired: propose the ISR without f (§4.8).
    fn on_lag(&self, state: &mut BrokerState, follower: BrokerId, out: &mut Out) {
        let view = state.view.expect("a leader holds a view");
        let isr = view.isr.without(follower);
        let leader = state
            .leader
            .as_mut()
            .expect("lag timers are armed only on a leader");
        leader.pending_isr = Some(isr);
        out.send(
            controller(),
            Msg::AlterPartition {
                isr,
                leader_epoch: view.leader_epoch,
                partition_epoch: view.partition_epoch,
                broker_epochs: Vec::new(),
            },
        );
    }

    /// §4.1 steps 2 and 3: install a newer view.
    fn install(&self, state: &mut BrokerState, view: View, out: &mut Out) {
        let previous = state.view;
        if view.leader == Some(self.id) {
            let new_leadership = state.leader.is_none()
                || previous.is_none_or(|p| p.leader_epoch != view.leader_epoch);
            if new_leadership {
                let replicas = (1..=self.cfg.brokers)
                    .map(BrokerId)
                    .filter(|b| *b != self.id)
                    .map(|b| {
                        let progress = ReplicaProgress {
                            fetch_offset: None,
                            hw_sent: state.hw,
                            parked: None,
                            broker_epoch: 0,
                        };
                        (b, progress)
                    })
                    .collect();
                let waiting = state.leader.take().map(|l| l.waiting).unwrap_or_default();
                self.reject_waiting(waiting, out);
                state.leader = Some(LeaderState {
                    leader_epoch_start_offset: state.leo(),
                    replicas,
                    pending_isr: None,
                    waiting: Vec::new(),
                });
                state.fetch_state = FetchState::Idle;
            }
            state.view = Some(view);
            self.advance_hw(state, out);
            return;
        }
        if let Some(leader) = state.leader.take() {
            self.reject_waiting(leader.waiting, out);
        }
        state.view = Some(view);
        let new_leader = previous.is_none_or(|p| p.leader != view.leader);
        let new_epoch = previous.is_some_and(|p| p.leader_epoch != view.leader_epoch);
        if !new_leader && new_epoch && !self.cfg.variant.refollows_on_new_epoch() {
            return self.resume(state, out);
        }
        if !new_leader && !new_epoch {
            return;
        }
        state.fetch_state = FetchState::Idle;
        let Some(leader) = view.leader else { return };
        match self.cfg.variant {
            Variant::HwTruncation => {
                let hw = state.hw;
                state.truncate(hw);
                self.send_fetch(state, leader.id(), out);
            }
            Variant::Kip101 | Variant::Kip279 if !state.log.is_empty() => {
                let requested_epoch = epochs::last_epoch(&state.log);
                out.send(leader.id(), Msg::OffsetsForLeaderEpoch { requested_epoch });
                state.fetch_state = FetchState::Truncating;
            }
            _ => self.send_fetch(state, leader.id(), out),
        }
    }

    /// §4.1 step 3, before Kafka 2.1: a new epoch of the same leader. The follower does not
    /// truncate again; it re-sends, at the new epoch, the request its state calls for: a
    /// `Fetch` if it was fetching, else (`kip-101`, `kip-279`) the epoch lookup, which an
    /// error may have cut short and which Kafka's fetcher retried. The answer to the request it
    /// replaces echoes the old epoch and is ignored (§4.3).
    fn resume(&self, state: &mut BrokerState, out: &mut Out) {
        let Some(leader) = state.view.and_then(|v| v.leader) else {
            return;
        };
        let lookup = self.cfg.variant.epoch_lookup() && !state.log.is_empty();
        if lookup && state.fetch_state != FetchState::Fetching {
            let requested_epoch = epochs::last_epoch(&state.log);
            out.send(leader.id(), Msg::OffsetsForLeaderEpoch { requested_epoch });
            state.fetch_state = FetchState::Truncating;
        } else {
            self.send_fetch(state, leader.id(), out);
        }
    }

    fn send_fetch(&self, state: &mut BrokerState, leader: Id, out: &mut Out) {
        out.send(leader, state.fetch_request());
        state.fetch_state = FetchState::Fetching;
    }

    fn reject_waiting(&self, waiting: Vec<(RecordId, Offset)>, out: &mut Out) {
        for (record_id, _) in waiting {
            let result = ProduceResult::NotLeader;
            out.send(self.client(), Msg::ProduceResponse { record_id, result });
        }
    }

    /// §4.2: the leader answers a follower's fetch.
    fn on_fetch(
        &self,
        state: &mut BrokerState,
        (follower, broker_epoch): (BrokerId, u8),
        request_epoch: Epoch,
        fetch_offset: Offset,
        last_fetched_epoch: Epoch,
        out: &mut Out,
    ) {
        let respond = |result: FetchResult, out: &mut Out| {
            let leader_epoch = request_epoch;
            out.send(
                follower.id(),
                Msg::FetchResponse {
                    leader_epoch,
                    fetch_offset,
                    result,
                },
            );
        };
        let Some(leader) = &state.leader else {
            return respond(FetchResult::NotLeader, out);
        };
        let view = state.view.expect("a leader holds a view");
        if self.cfg.variant.fences_fetch() {
            if request_epoch < view.leader_epoch {
                return respond(FetchResult::FencedLeaderEpoch, out);
            }
            if request_epoch > view.leader_epoch {
                return respond(FetchResult::UnknownLeaderEpoch, out);
            }
            if fetch_offset > 0 {
                let current = (view.leader_epoch, leader.leader_epoch_start_offset);
                let (epoch, end_offset) =
                    epochs::leader_lookup(&state.log, current, last_fetched_epoch);
                if epoch != last_fetched_epoch || end_offset < fetch_offset {
                    return respond(FetchResult::DivergingEpoch { epoch, end_offset }, out);
                }
            }
        }
        if fetch_offset > state.leo() {
            let log_end_offset = state.leo();
            return respond(FetchResult::OffsetOutOfRange { log_end_offset }, out);
        }
        let hw = state.hw;
        let leader = state.leader.as_mut().expect("checked above");
        let progress = leader
            .replicas
            .get_mut(&follower)
            .expect("every other broker");
        progress.fetch_offset = Some(fetch_offset);
        progress.broker_epoch = broker_epoch;
        progress.parked = Some(request_epoch);
        let maximal_isr = view.isr.union(leader.pending_isr.unwrap_or_default());
        if !maximal_isr.contains(follower)
            && leader.pending_isr.is_none()
            && fetch_offset >= hw
            && (fetch_offset >= leader.leader_epoch_start_offset
                || !self.cfg.variant.isr_join_needs_epoch_start())
        {
            let isr = view.isr.with(follower);
            leader.pending_isr = Some(isr);
            let (leader_epoch, partition_epoch) = (view.leader_epoch, view.partition_epoch);
            out.send(
                controller(),
                Msg::AlterPartition {
                    isr,
                    leader_epoch,
                    partition_epoch,
                    broker_epochs: vec![(follower, broker_epoch)],
                },
            );
        }
        // Advancing the HW answers parked fetches, this one included when there is news.
        self.advance_hw(state, out);
        self.answer_parked(state, out);
    }

    /// §4.3: the follower handles its leader's answer.
    fn on_fetch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        result: FetchResult,
        out: &mut Out,
    ) {
        match result {
            FetchResult::Records {
                records,
                high_watermark,
            } => {
                state.log.extend(records);
                state.hw = high_watermark.min(state.leo());
                self.send_fetch(state, src, out);
            }
            FetchResult::DivergingEpoch { epoch, end_offset } => {
                let own_end = epochs::end_of_epoch(&state.log, epoch);
                state.truncate(end_offset.min(own_end));
                self.send_fetch(state, src, out);
            }
            FetchResult::OffsetOutOfRange { log_end_offset } => {
                state.truncate(log_end_offset);
                self.send_fetch(state, src, out);
            }
            FetchResult::FencedLeaderEpoch
            | FetchResult::UnknownLeaderEpoch
            | FetchResult::NotLeader => state.fetch_state = FetchState::Idle,
        }
    }

    /// §4.4, leader side.
    fn epoch_lookup(
        &self,
        state: &BrokerState,
        requested_epoch: Epoch,
    ) -> OffsetsForLeaderEpochResult {
        let (Some(leader), Some(view)) = (&state.leader, state.view) else {
            return OffsetsForLeaderEpochResult::NotLeader;
        };
        let current = (view.leader_epoch, leader.leader_epoch_start_offset);
        match self.cfg.variant {
            Variant::Kip101 => {
                // The start of the first epoch above the requested one, or the LEO.
                let end_offset = if view.leader_epoch > requested_epoch {
                    epochs::end_of_epoch(&state.log, requested_epoch)
                        .min(leader.leader_epoch_start_offset)
                } else {
                    state.leo()
                };
                OffsetsForLeaderEpochResult::Ok {
                    epoch: requested_epoch,
                    end_offset,
                }
            }
            _ => {
                let (epoch, end_offset) =
                    epochs::leader_lookup(&state.log, current, requested_epoch);
                OffsetsForLeaderEpochResult::Ok { epoch, end_offset }
            }
        }
    }

    /// §4.4, follower side.
    fn on_epoch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        result: OffsetsForLeaderEpochResult,
        out: &mut Out,
    ) {
        match result {
            OffsetsForLeaderEpochResult::Ok { epoch, end_offset } => {
                let target = match self.cfg.variant {
                    Variant::Kip101 => end_offset.min(state.leo()),
                    _ => end_offset.min(epochs::end_of_epoch(&state.log, epoch)),
                };
                state.truncate(target);
                self.send_fetch(state, src, out);
            }
            OffsetsForLeaderEpochResult::NotLeader => state.fetch_state = FetchState::Idle,
        }
    }

    /// §4.5: the leader appends a client record.
    fn on_produce(&self, state: &mut BrokerState, record_id: RecordId, acks: Acks, out: &mut Out) {
        let client = self.client();
        let respond = |result: ProduceResult, out: &mut Out| {
            out.send(client, Msg::ProduceResponse { record_id, result });
        };
        let (Some(_), Some(view)) = (&state.leader, state.view) else {
            return respond(ProduceResult::NotLeader, out);
        };
        if acks == Acks::All && view.isr.len() < self.cfg.min_insync_replicas as usize {
            return respond(ProduceResult::NotEnoughReplicas, out);
        }
        let existing = state.log.iter().position(|r| r.record_id == record_id);
        let offset = match existing {
            Some(offset) => offset as Offset,
            None => {
                state.log.push(Record {
                    leader_epoch: view.leader_epoch,
                    record_id,
                });
                state.leo() - 1
            }
        };
        if acks == Acks::One || offset < state.hw {
            respond(ProduceResult::Ok { offset }, out);
        } else {
            let leader = state.leader.as_mut().expect("checked above");
            if !leader.waiting.contains(&(record_id, offset)) {
                leader.waiting.push((record_id, offset));
            }
        }
        self.advance_hw(state, out);
        self.answer_parked(state, out);
    }

    /// §4.9: the controller answered the leader's `AlterPartition`.
    fn on_alter_response(
        &self,
        state: &mut BrokerState,
        result: crate::msg::AlterPartitionResult,
        out: &mut Out,
    ) {
        let Some(leader) = state.leader.as_mut() else {
            return;
        };
        leader.pending_isr = None;
        if let crate::msg::AlterPartitionResult::Ok(view) = result {
            if state
                .view
                .is_none_or(|v| v.partition_epoch < view.partition_epoch)
            {
                state.view = Some(view);
            }
        }
        self.advance_hw(state, out);
    }

    /// §4.7: move the HW to the minimum LEO of the maximal ISR.
    fn advance_hw(&self, state: &mut BrokerState, out: &mut Out) {
        let (Some(leader), Some(view)) = (&mut state.leader, state.view) else {
            return;
        };
        let maximal_isr = view.isr.union(leader.pending_isr.unwrap_or_default());
        let leo = state.log.len() as Offset;
        let candidate = maximal_isr
            .iter()
            .map(|b| match leader.replicas.get(&b) {
                None => leo,
                Some(p) => p.fetch_offset.unwrap_or(0),
            })
            .min()
            .unwrap_or(leo);
        let allowed = self.cfg.variant != Variant::Kip966
            || view.isr.len() >= self.cfg.min_insync_replicas as usize;
        if candidate <= state.hw || !allowed {
            return;
        }
        state.hw = candidate;
        // Kafka checks `min.insync.replicas` again when the HW reaches a waiting record
        // (`NOT_ENOUGH_REPLICAS_AFTER_APPEND`, since 0.8.2, so in every variant): a shrink may
        // have let the HW pass it with fewer copies than promised.
        let enough = maximal_isr.len() >= self.cfg.min_insync_replicas as usize;
        let client = self.client();
        leader.waiting.retain(|&(record_id, offset)| {
            if offset < candidate {
                let result = if enough {
                    ProduceResult::Ok { offset }
                } else {
                    ProduceResult::NotEnoughReplicasAfterAppend
                };
                out.send(client, Msg::ProduceResponse { record_id, result });
            }
            offset >= candidate
        });
        self.answer_parked(state, out);
    }

    /// Answer every parked fetch that now has news (new records or a newer HW).
    fn answer_parked(&self, state: &mut BrokerState, out: &mut Out) {
        let (hw, leo) = (state.hw, state.leo());
        let Some(leader) = &mut state.leader else {
            return;
        };
        for (follower, progress) in leader.replicas.iter_mut() {
            let Some(fetch_offset) = progress.fetch_offset else {
                continue;
            };
            let Some(leader_epoch) = progress.parked else {
                continue;
            };
            if fetch_offset >= leo && progress.hw_sent >= hw {
                continue;
            }
            progress.parked = None;
            progress.hw_sent = hw;
            send_records(out, &state.log, *follower, leader_epoch, fetch_offset, hw);
        }
    }

    /// Ends a step: under `fsync = always` every append was made durable before anything
    /// was sent (§2).
    pub fn sync(&self, state: &mut BrokerState) {
        if self.cfg.fsync == Fsync::Always {
            state.flushed = state.leo();
        }
        assert!(state.flushed <= state.leo(), "durable end past the LEO");
    }

    /// What must be saved after a step that turned `before` into `after`: the durable log
    /// prefix or the HW checkpoint, when either changed.
    pub fn storage_update(
        &self,
        before: &BrokerState,
        after: &BrokerState,
    ) -> Option<BrokerStorage> {
        fn durable(s: &BrokerState) -> (&[Record], Offset) {
            (&s.log[..s.flushed as usize], s.hw_checkpoint)
        }
        (durable(before) != durable(after)).then(|| after.storage())
    }
}

/// Answers a parked fetch: the leader's records from `fetch_offset` and its HW. The answer
/// echoes the request's `leader_epoch`, not the leader's: in the variants without fetch
/// fencing a fetch stamped with an older epoch is served, and its answer says so.
fn send_records(
    out: &mut Out,
    log: &[Record],
    follower: BrokerId,
    leader_epoch: Epoch,
    fetch_offset: Offset,
    hw: Offset,
) {
    let records = log[fetch_offset as usize..].to_vec();
    let result = FetchResult::Records {
        records,
        high_watermark: hw,
    };
    let response = Msg::FetchResponse {
        leader_epoch,
        fetch_offset,
        result,
    };
    out.send(follower.id(), response);
}
