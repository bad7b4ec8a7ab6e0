//! The checked system: an `ActorModel` of the actors plus the faults Stateright cannot express
//! by itself, wrapped in [`InsyncModel`].
//!
//! The wrapper does six things and nothing else:
//! - it counts faults in the state's history ([`Budget`]) and offers a fault action only while
//!   its budget lasts: broker crashes (`Crash(b)`, never the controller or client), session
//!   expiries (`Expire(b)`), ISR-shrink proposals (`Lag(f)`) and client reads (`Consume(b)`);
//!   a broker's `Flush` and `HwCheckpoint` fire only while a crash may still come;
//! - it breaks connections when a broker crashes: every message in flight between the crashed
//!   broker and the controller or another broker, in either direction, is lost, and so is
//!   anything sent to it while it is down. Messages between the client and the broker survive:
//!   they stand for the client's retry on a new connection (docs/protocol.md §3). Without the
//!   outbound half, a fetch sent before the crash would count after the restart as progress
//!   of the new incarnation (the bug KIP-903 fixes with broker epochs);
//! - it bounds the leader epoch (`max_epoch`);
//! - it keeps the ghost history ([`Ghost`]) that the properties judge against: it writes it
//!   after each step, from the step and the states around it, and no actor ever sees it;
//! - for the checker only ([`InsyncModel::forgetting_dead_durability`]), it forgets what no
//!   property and no future step can read: once the crash budget is spent, a live broker's
//!   durable state (`flushed`, `hw_checkpoint`, its storage) is never read again, so it is
//!   set to "everything saved" instead of keeping the values its past left there. Without
//!   this the default check has 9 times as many states that differ only in dead fields.
//! - for the checker only ([`InsyncModel::reduced`]), the reductions of `reduction.rs`: reads
//!   and produces taken as uninterrupted exchanges, a crash choosing what its broker had
//!   saved. Each loses nothing a property sees (docs/reductions.md).

use crate::actor::{InsyncActor, State, Storage};
use crate::any_leader;
use crate::broker::Broker;
use crate::client::Client;
use crate::config::{Acks, Config};
use crate::controller::{Controller, ElectionChoice};
use crate::ghost::Ghost;
use crate::msg::{Msg, Timer};
use crate::reduction::{self, Reductions, Saveable};
use crate::types::{BrokerId, Epoch};
use serde::Serialize;
use stateright::actor::{ActorModel, ActorModelAction, ActorModelState, Id, Network};
use stateright::{Model, Path, Property, Rewrite, RewritePlan};

/// Faults and reads spent so far on this path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Budget {
    pub crashes: u8,
    pub expiries: u8,
    pub isr_shrinks: u8,
    pub reads: u8,
    pub rejoins: u8,
    pub retries: u8,
}

/// Stateright's per-path history: the fault budget spent and the ghost record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct History {
    pub budget: Budget,
    pub ghost: Ghost,
    /// Checker reduction only (`reduction.rs`, durability chosen at the crash): what each
    /// broker (by actor index) could have saved, and the broker whose crash is being decided.
    /// Empty and `None` in the plain model.
    pub saveable: Vec<Saveable>,
    pub crashing: Option<BrokerId>,
    /// Checker reduction only (atomic produces): the last step sent a produce that nothing can
    /// answer on its way, so its delivery comes next. False in the plain model.
    pub produce_sent: bool,
    /// The checker's model only (`any_leader.rs`): the last step elected a leader while other
    /// brokers were eligible too, so a step electing one of them instead may come next. `None`
    /// in the plain model.
    pub electing: Option<ElectionChoice>,
}

impl Rewrite<Id> for History {
    /// Neither part names a broker.
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        History {
            budget: self.budget,
            ghost: self.ghost.rewrite(plan),
            saveable: self.saveable.clone(),
            crashing: self.crashing.map(|b| b.rewrite(plan)),
            produce_sent: self.produce_sent,
            electing: self.electing.map(|c| c.rewrite(plan)),
        }
    }
}

/// The inner actor model.
pub type Actors = ActorModel<InsyncActor, Config, History>;
/// One state of the whole system.
pub type SystemState = ActorModelState<InsyncActor, History>;
/// One step of the whole system.
pub type Action = ActorModelAction<Msg, Timer, ()>;

/// The model of one partition under one configuration.
#[derive(Clone)]
pub struct InsyncModel {
    pub cfg: Config,
    pub actors: Actors,
    /// Check only the property at this index of `properties::all()` (shortest-path searches).
    pub only: Option<usize>,
    /// See the module doc. Off for the conformance harness, whose nodes keep those fields.
    pub forget_dead_durability: bool,
    /// The checker's reductions (`reduction.rs`); none in the plain model.
    pub reductions: Reductions,
    /// The controller may elect any eligible replica (`any_leader.rs`); off in the plain
    /// model, whose controller elects the lowest id as the implementation does.
    pub any_eligible_leader: bool,
}

impl InsyncModel {
    /// Builds the model: controller at index 0, brokers `1..=N`, client at `N+1`, FIFO channels.
    pub fn new(cfg: Config) -> Self {
        cfg.validate().expect("valid configuration");
        let mut actors = ActorModel::new(cfg, History::default())
            .actor(InsyncActor::Controller(Controller { cfg }))
            .actors((1..=cfg.brokers).map(|b| {
                InsyncActor::Broker(Broker {
                    id: BrokerId(b),
                    cfg,
                })
            }))
            .actor(InsyncActor::Client(Client { cfg }))
            .init_network(Network::new_ordered([]));
        actors.max_crashes = cfg.brokers as usize;
        InsyncModel {
            cfg,
            actors,
            only: None,
            forget_dead_durability: false,
            reductions: Reductions::default(),
            any_eligible_leader: false,
        }
    }

    /// The model `insync check` runs: every reduction of `reduction.rs` on, and dead durable
    /// state forgotten (module doc). None loses a behaviour a property can see
    /// (docs/reductions.md).
    pub fn reduced(self) -> Self {
        InsyncModel {
            reductions: Reductions::all(),
            ..self.forgetting_dead_durability()
        }
    }

    /// The same model with a controller that may elect any eligible replica, not only the
    /// lowest id (`any_leader.rs`): every replica-assignment order Kafka could have. What
    /// `insync check --symmetry on` runs, since it makes renaming brokers a symmetry.
    pub fn electing_any(mut self) -> Self {
        self.any_eligible_leader = true;
        self
    }

    /// The same model with the checker's reduction of dead durable state (module doc).
    pub fn forgetting_dead_durability(mut self) -> Self {
        self.forget_dead_durability = true;
        self
    }

    /// Sets every live broker's durable state to "everything saved" once no crash is left:
    /// nothing reads it again (properties read only crashed brokers' storage, and only a
    /// crashed broker restarts), so states differing only there are the same state.
    fn forget_durability(&self, state: &mut SystemState) {
        if state.history.budget.crashes < self.cfg.crashes {
            return;
        }
        for index in 1..=self.cfg.brokers as usize {
            let Some(broker) = state.actor_states[index].as_broker() else {
                continue;
            };
            if state.crashed[index] || broker.durability_timers() == (false, false) {
                continue;
            }
            let mut broker = broker.clone();
            broker.flushed = broker.leo();
            broker.hw_checkpoint = broker.hw;
            state.actor_storages[index] = Some(Storage::Broker(broker.storage()));
            state.actor_states[index] = std::sync::Arc::new(State::Broker(broker));
            state.timers_set[index].cancel(&Timer::Flush);
            state.timers_set[index].cancel(&Timer::HwCheckpoint);
        }
    }

    fn client_id(&self) -> Id {
        Id::from(self.cfg.client_index())
    }

    /// Whether the fault budget allows `action` in `state`.
    fn allowed(&self, state: &SystemState, action: &Action) -> bool {
        let budget = &state.history.budget;
        match action {
            ActorModelAction::Crash(id) => self.is_broker(*id) && budget.crashes < self.cfg.crashes,
            ActorModelAction::Timeout(_, Timer::Expire(_)) => budget.expiries < self.cfg.expiries,
            ActorModelAction::Timeout(_, Timer::Lag(_)) => {
                budget.isr_shrinks < self.cfg.isr_shrinks
            }
            ActorModelAction::Timeout(_, Timer::Consume(_)) => budget.reads < self.cfg.reads,
            // Saving matters only to a later crash: once the crash budget is spent no live
            // broker's storage is read again (docs/protocol.md §2).
            ActorModelAction::Timeout(_, Timer::Flush | Timer::HwCheckpoint) => {
                budget.crashes < self.cfg.crashes
            }
            ActorModelAction::Timeout(_, Timer::FetchRetry)
            | ActorModelAction::Timeout(_, Timer::FetchBackoff)
            | ActorModelAction::Timeout(_, Timer::ParkedRelease(_)) => {
                budget.retries < self.cfg.retries
            }
            // Only a broker that is up and registered can heartbeat.
            ActorModelAction::Timeout(_, Timer::Heartbeat(b)) => {
                budget.rejoins < self.cfg.rejoins
                    && !state.crashed[b.0 as usize]
                    && state.actor_states[b.0 as usize]
                        .as_broker()
                        .is_some_and(|s| s.registered)
            }
            _ => true,
        }
    }

    fn is_broker(&self, id: Id) -> bool {
        let index = usize::from(id);
        index >= 1 && index <= self.cfg.brokers as usize
    }

    /// Drops what a broken connection loses: every message in flight between a crashed broker
    /// and the controller or another broker, in either direction.
    fn break_connections(&self, state: &mut SystemState) {
        if !state.crashed.iter().any(|c| *c) {
            return;
        }
        let client = self.client_id();
        let crashed = state.crashed.clone();
        if let Network::Ordered(channels) = &mut state.network {
            channels.retain(|(src, dst), _| {
                let broken = crashed[usize::from(*src)] || crashed[usize::from(*dst)];
                *src == client || *dst == client || !broken
            });
        }
    }

    /// The actor states, for properties and descriptions.
    pub fn broker_state<'a>(
        &self,
        state: &'a SystemState,
        b: u8,
    ) -> &'a crate::broker::BrokerState {
        state.actor_states[b as usize]
            .as_broker()
            .expect("actor index b is broker b")
    }
}

impl Model for InsyncModel {
    type State = SystemState;
    type Action = Action;

    fn init_states(&self) -> Vec<SystemState> {
        self.actors.init_states()
    }

    fn actions(&self, state: &SystemState, actions: &mut Vec<Action>) {
        if let Some(step) = reduction::forced_step(self, state) {
            actions.push(step);
        } else {
            self.actors.actions(state, actions);
            actions.retain(|a| self.allowed(state, a) && !reduction::ruled_out(self, state, a));
            reduction::add_crash_choices(state, actions);
        }
        any_leader::add_choices(state, actions);
    }

    fn next_state(&self, last: &SystemState, action: Action) -> Option<SystemState> {
        let mut history = last.history.clone();
        let budget = &mut history.budget;
        match &action {
            ActorModelAction::Crash(_) => budget.crashes += 1,
            ActorModelAction::Timeout(_, Timer::Expire(_)) => budget.expiries += 1,
            ActorModelAction::Timeout(_, Timer::Lag(_)) => budget.isr_shrinks += 1,
            ActorModelAction::Timeout(_, Timer::Consume(_)) => budget.reads += 1,
            ActorModelAction::Timeout(_, Timer::Heartbeat(_)) => budget.rejoins += 1,
            ActorModelAction::Timeout(_, Timer::FetchRetry)
            | ActorModelAction::Timeout(_, Timer::FetchBackoff)
            | ActorModelAction::Timeout(_, Timer::ParkedRelease(_)) => budget.retries += 1,
            _ => {}
        }
        if let Some(next) = reduction::crash_choice(self, last, &action) {
            return Some(next);
        }
        if let Some(next) = any_leader::choice_step(self, last, &action) {
            return Some(next);
        }
        let mut next = self.actors.next_state(last, action.clone())?;
        history.electing = any_leader::take_choice(self, &mut next);
        if reduction::read_added_nothing(self, last, &action, &next) {
            history.budget.reads -= 1;
        }
        history.ghost.observe(&self.cfg, last, &action, &next);
        next.history = history;
        self.break_connections(&mut next);
        if self.forget_dead_durability {
            self.forget_durability(&mut next);
        }
        reduction::track_saveable(self, last, &action, &mut next);
        next.history.produce_sent = reduction::produce_sent(self, &action, &next);
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        crate::describe::action_summary(&self.cfg, action)
    }

    fn format_step(&self, last: &SystemState, action: Action) -> Option<String> {
        self.actors.format_step(last, action)
    }

    fn as_svg(&self, path: Path<SystemState, Action>) -> Option<String> {
        self.actors.as_svg(path)
    }

    /// Every property, except the witnesses a configuration rules out: `isr_shrink` when the
    /// `Lag` budget is 0 (it is about a leader's shrink; the 3-broker default has none, to stay
    /// under a minute, the 2-broker default reaches it), and `not_enough_replicas` under
    /// acks=1, which min ISR does not apply to.
    fn properties(&self) -> Vec<Property<Self>> {
        let mut all = crate::properties::all();
        match self.only {
            None => {
                all.retain(|p| self.cfg.isr_shrinks > 0 || p.name != "isr_shrink");
                all.retain(|p| self.cfg.acks == Acks::All || p.name != "not_enough_replicas");
                all
            }
            Some(i) => vec![all.swap_remove(i)],
        }
    }

    fn within_boundary(&self, state: &SystemState) -> bool {
        let controller = state.actor_states[0]
            .as_controller()
            .expect("actor 0 is the controller");
        controller.view.leader_epoch <= Epoch::from(self.cfg.max_epoch)
    }
}

/// Message `msg` is in flight from `src` to `dst` (FIFO channels are scanned directly:
/// `Network::iter_all` never ends on ordered networks).
pub fn in_flight(state: &SystemState, src: Id, dst: Id, pred: impl Fn(&Msg) -> bool) -> bool {
    match &state.network {
        Network::Ordered(channels) => channels
            .get(&(src, dst))
            .is_some_and(|queue| queue.iter().any(pred)),
        _ => unreachable!("the model's network is ordered"),
    }
}

/// Every message in flight, by channel.
pub fn messages(state: &SystemState) -> Vec<(Id, Id, &Msg)> {
    match &state.network {
        Network::Ordered(channels) => channels
            .iter()
            .flat_map(|((src, dst), queue)| queue.iter().map(move |m| (*src, *dst, m)))
            .collect(),
        _ => unreachable!("the model's network is ordered"),
    }
}
