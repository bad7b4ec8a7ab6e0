//! The one Stateright actor type: a controller, N brokers and a client behind one enum.
//!
//! The `State` enum's variant order (`Controller < Broker < Client`) matters: symmetry
//! reduction sorts actor states, and this order keeps the controller at index 0 and the client
//! at index N+1 so that only brokers are permuted (see `symmetry.rs`).

use crate::broker::{Broker, BrokerState, BrokerStorage};
use crate::client::{Client, ClientState};
use crate::controller::{Controller, ControllerState};
use crate::msg::{ClientReply, ClientRequest, Msg, PeerMsg, Timer};
use crate::types::BrokerId;
use serde::Serialize;
use stateright::actor::{Actor, Id};
use stateright::{Rewrite, RewritePlan};
use std::borrow::Cow;

/// Commands an actor emits in one step.
pub type Out = stateright::actor::Out<InsyncActor>;

/// Sending by channel (docs/protocol.md §3): the caller says which kind of message it sends,
/// so a client can only send requests and only a broker answers them.
pub trait Emit {
    fn send_peer(&mut self, dst: Id, msg: PeerMsg);
    fn send_request(&mut self, dst: Id, msg: ClientRequest);
    fn send_reply(&mut self, dst: Id, msg: ClientReply);
}

impl Emit for Out {
    fn send_peer(&mut self, dst: Id, msg: PeerMsg) {
        self.send(dst, Msg::Peer(msg));
    }
    fn send_request(&mut self, dst: Id, msg: ClientRequest) {
        self.send(dst, Msg::Request(msg));
    }
    fn send_reply(&mut self, dst: Id, msg: ClientReply) {
        self.send(dst, Msg::Reply(msg));
    }
}

#[derive(Clone, Debug)]
pub enum InsyncActor {
    Controller(Controller),
    Broker(Broker),
    Client(Client),
}

/// One actor's state; a plain, serialisable view for the conformance harness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum State {
    Controller(ControllerState),
    Broker(BrokerState),
    Client(ClientState),
}

impl State {
    pub fn as_broker(&self) -> Option<&BrokerState> {
        match self {
            State::Broker(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_controller(&self) -> Option<&ControllerState> {
        match self {
            State::Controller(c) => Some(c),
            _ => None,
        }
    }
    pub fn as_client(&self) -> Option<&ClientState> {
        match self {
            State::Client(c) => Some(c),
            _ => None,
        }
    }
}

impl Rewrite<Id> for State {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            State::Controller(c) => State::Controller(c.rewrite(plan)),
            State::Broker(b) => State::Broker(b.rewrite(plan)),
            State::Client(c) => State::Client(c.rewrite(plan)),
        }
    }
}

/// What survives a crash; only brokers save anything (the controller never crashes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Storage {
    Broker(BrokerStorage),
}

impl Rewrite<Id> for Storage {
    fn rewrite<S>(&self, _plan: &RewritePlan<Id, S>) -> Self {
        self.clone()
    }
}

impl InsyncActor {
    /// Runs `step` on a copy of the state and keeps it only if it changed; then re-arms
    /// timers and saves storage as the new state requires.
    fn apply(
        &self,
        state: &mut Cow<State>,
        out: &mut Out,
        step: impl FnOnce(&mut State, &mut Out),
    ) {
        let mut next = (**state).clone();
        step(&mut next, out);
        if let (InsyncActor::Broker(broker), State::Broker(after)) = (self, &mut next) {
            broker.sync(after);
        }
        match (self, &**state, &next) {
            (InsyncActor::Broker(broker), State::Broker(before), State::Broker(after)) => {
                let (old, new) = (before.timers(), after.timers());
                for timer in new.difference(&old) {
                    out.set_timer(*timer, stateright::actor::model_timeout());
                }
                for timer in old.difference(&new) {
                    out.cancel_timer(*timer);
                }
                if let Some(storage) = broker.storage_update(before, after) {
                    out.save(Storage::Broker(storage));
                }
            }
            (InsyncActor::Controller(c), State::Controller(before), State::Controller(after)) => {
                c.sync_timers(Some(before), after, out)
            }
            (InsyncActor::Client(c), State::Client(before), State::Client(after)) => {
                c.sync_timers(Some(before), after, out)
            }
            _ => unreachable!("actor and state kinds always match"),
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}

impl Actor for InsyncActor {
    type Msg = Msg;
    type Timer = Timer;
    type State = State;
    type Storage = Storage;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<Storage>, out: &mut Out) -> State {
        match self {
            InsyncActor::Controller(c) => State::Controller(c.on_start(out)),
            InsyncActor::Client(c) => State::Client(c.on_start(out)),
            InsyncActor::Broker(b) => {
                let storage = storage.as_ref().map(|Storage::Broker(s)| s);
                let state = b.on_start(storage, out);
                for timer in state.timers() {
                    out.set_timer(timer, stateright::actor::model_timeout());
                }
                State::Broker(state)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<State>, src: Id, msg: Msg, out: &mut Out) {
        self.apply(state, out, |s, out| match (self, s) {
            (InsyncActor::Controller(c), State::Controller(s)) => c.on_msg(s, src, msg, out),
            (InsyncActor::Broker(b), State::Broker(s)) => b.on_msg(s, src, msg, out),
            (InsyncActor::Client(c), State::Client(s)) => c.on_msg(s, src, msg, out),
            _ => unreachable!("actor and state kinds always match"),
        })
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, timer: &Timer, out: &mut Out) {
        let timer = *timer;
        self.apply(state, out, |s, out| match (self, s) {
            (InsyncActor::Controller(c), State::Controller(s)) => c.on_timeout(s, timer, out),
            (InsyncActor::Broker(b), State::Broker(s)) => b.on_timeout(s, timer, out),
            (InsyncActor::Client(c), State::Client(s)) => c.on_timeout(s, timer, out),
            _ => unreachable!("actor and state kinds always match"),
        });
        // Stateright disarms a timer that fires; a broker timer the new state still calls for
        // (`FetchRetry` after its re-send) is armed again, as the implementation's is.
        if let State::Broker(after) = &**state {
            if after.timers().contains(&timer) {
                out.set_timer(timer, stateright::actor::model_timeout());
            }
        }
    }

    fn name(&self) -> String {
        match self {
            InsyncActor::Controller(_) => "controller".into(),
            InsyncActor::Broker(b) => format!("broker {}", b.id),
            InsyncActor::Client(_) => "client".into(),
        }
    }
}

/// The display name of actor index `index` in a model with `brokers` brokers.
pub fn actor_name(index: usize, brokers: u8) -> String {
    match index {
        0 => "controller".into(),
        i if i <= brokers as usize => format!("broker {}", BrokerId(i as u8)),
        _ => "client".into(),
    }
}
