//! The broker: leader or follower of the one partition (docs/protocol.md §4.1–4.9).
//!
//! Followers pull with `Fetch` (one request in flight). The leader long-polls: a fetch that
//! would return nothing new is parked and answered when the LEO or HW moves. Divergence after a
//! leader change is resolved per variant: the leader detects it (`DivergingEpoch`, `kip-966`
//! and `kip-320`), the follower looks the epoch up first (KIP-101, KIP-279), or the follower
//! truncates to its own HW (before KIP-101). The HW is the minimum LEO over the maximal ISR
//! and, in `kip-966`, moves only while the ISR has at least `min_insync_replicas` members.
//!
//! The files are those of the implementation's core (impl/src/core/broker/), so that a rule
//! can be read side by side with its code:
//!
//! - `leader_and_isr`: installing a view, becoming leader or follower (§4.1);
//! - `fetch`: the leader's side of `Fetch`, parked fetches (§4.2);
//! - `fetch_response`: the follower's side (§4.3);
//! - `epoch_lookup`: `OffsetsForLeaderEpoch`, both sides (§4.4, `kip-101`/`kip-279`);
//! - `produce` (§4.5), `consume` (§4.6), `high_watermark` (§4.7), `lag` (§4.8),
//!   `alter_partition` (§4.9);
//! - `durability`: what is saved, and the `Flush` and `HwCheckpoint` timers (§2): under
//!   `fsync = always` every append is saved before anything is sent; under `lazy` (Kafka's
//!   default) an append waits for `Flush`, so a crash loses what came after the last flush; a
//!   truncation is always saved; the HW checkpoint lags the HW until `HwCheckpoint` fires;
//! - `timers`: which timers are armed, and the three that end a wait, `FetchRetry`,
//!   `FetchBackoff` and `ParkedRelease(f)` (§4.12).
//!
//! This file holds the state and the dispatch: one arm per message, whose guards are the
//! protocol's acceptance tests. A restarted broker holds no view and ignores `LeaderAndIsr`
//! until the controller answers its `RegisterBroker`.

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
mod timers;

use crate::actor::{Emit, Out, Storage};
use crate::config::Config;
use crate::msg::{ClientRequest, Msg, PeerMsg, Timer};
use crate::types::{epochs, BrokerId, BrokerSet, Epoch, Offset, Record, RecordId, View};
use fetch::FetchRequest;
use serde::Serialize;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};
use std::collections::BTreeMap;

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
    fn fetch_request(&self) -> PeerMsg {
        let view = self.view.expect("a follower holds a view");
        PeerMsg::Fetch {
            leader_epoch: view.leader_epoch,
            fetch_offset: self.leo(),
            last_fetched_epoch: epochs::last_epoch(&self.log),
            broker_epoch: self.broker_epoch,
        }
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
                out.send_peer(controller(), PeerMsg::RegisterBroker { broker_epoch });
                state
            }
        }
    }

    /// Dispatch one message by channel. A broker sends replies and never receives one.
    pub fn on_msg(&self, state: &mut BrokerState, src: Id, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Peer(msg) => self.on_peer_msg(state, src, msg, out),
            Msg::Request(request) => self.on_request(state, src, request, out),
            Msg::Reply(_) => {}
        }
    }

    /// One arm per peer message; the guards are the protocol's acceptance tests.
    fn on_peer_msg(&self, state: &mut BrokerState, src: Id, msg: PeerMsg, out: &mut Out) {
        match msg {
            PeerMsg::RegisterBrokerResponse if src == controller() => state.registered = true,
            // A view from before this incarnation registered, or an old one: ignore (§4.1.1).
            PeerMsg::LeaderAndIsr(view)
                if !state.registered
                    || state
                        .view
                        .is_some_and(|v| v.partition_epoch >= view.partition_epoch) => {}
            PeerMsg::LeaderAndIsr(view) => self.install(state, view, out),
            PeerMsg::AlterPartitionResponse { result } => {
                self.on_alter_response(state, result, out)
            }
            PeerMsg::Fetch {
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                broker_epoch,
            } => {
                let request = FetchRequest {
                    follower: BrokerId::from_id(src),
                    broker_epoch,
                    leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                };
                self.on_fetch(state, request, out)
            }
            // Responses from anyone but the leader of its view, for another epoch, or for a fetch
            // other than the one it would send now (an answer to a fetch its previous
            // incarnation sent, which a leader held parked across the crash): stale (§4.3).
            PeerMsg::FetchResponse {
                leader_epoch,
                fetch_offset,
                ..
            } if state.fetch_state != FetchState::Fetching
                || fetch_offset != state.leo()
                || !state.view.is_some_and(|v| {
                    v.leader == Some(BrokerId::from_id(src)) && v.leader_epoch == leader_epoch
                }) => {}
            PeerMsg::FetchResponse { result, .. } => {
                self.on_fetch_response(state, src, result, out)
            }
            PeerMsg::OffsetsForLeaderEpoch { requested_epoch } => {
                let result = self.epoch_lookup(state, requested_epoch);
                out.send_peer(src, PeerMsg::OffsetsForLeaderEpochResponse { result });
            }
            PeerMsg::OffsetsForLeaderEpochResponse { .. }
                if state.fetch_state != FetchState::Truncating
                    || state
                        .view
                        .is_none_or(|v| v.leader != Some(BrokerId::from_id(src))) => {}
            PeerMsg::OffsetsForLeaderEpochResponse { result } => {
                self.on_epoch_response(state, src, result, out)
            }
            // Messages a broker never receives (controller-bound), and a registration answer
            // from anyone but the controller.
            PeerMsg::RegisterBrokerResponse
            | PeerMsg::AlterPartition { .. }
            | PeerMsg::RegisterBroker { .. } => {}
        }
    }

    /// The client's requests (§4.5, §4.6).
    fn on_request(&self, state: &mut BrokerState, src: Id, request: ClientRequest, out: &mut Out) {
        match request {
            ClientRequest::Produce { record_id, acks } => {
                self.on_produce(state, record_id, acks, out)
            }
            ClientRequest::Consume { fetch_offset } => {
                self.on_consume(state, src, fetch_offset, out)
            }
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
            Timer::Flush => state.on_flush(),
            Timer::HwCheckpoint => state.on_hw_checkpoint(),
            Timer::Expire(_) | Timer::Heartbeat(_) | Timer::Produce(_) | Timer::Consume(_) => {}
        }
    }
}
