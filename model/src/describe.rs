//! Paths in the protocol's own words: numbered steps, serialisable actions, Mermaid diagrams.

use crate::actor::{actor_name, State};
use crate::config::Config;
use crate::model::{Action, InsyncModel, SystemState};
use crate::msg::{
    AlterPartitionResult, ClientReply, ClientRequest, ConsumeResult, FetchResult, Msg,
    OffsetsForLeaderEpochResult, PeerMsg, ProduceResult, Timer,
};
use crate::types::fmt_log;
use serde::Serialize;
use stateright::actor::{ActorModelAction, Id};
use stateright::Model;

/// A model action as plain data (Stateright's `ActorModelAction` is not serialisable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum StepAction {
    /// `src` delivers `msg` to `dst` (actor indices; brokers are `1..=N`).
    Deliver { src: usize, dst: usize, msg: Msg },
    /// `actor`'s timer fires.
    Timeout { actor: usize, timer: Timer },
    /// Broker `actor` crashes (SIGKILL).
    Crash { actor: usize },
    /// Broker `actor` restarts from its data directory.
    Recover { actor: usize },
    /// The controller elects broker `leader` instead of the lowest eligible id (the checker's
    /// model only, `any_leader.rs`).
    Elect { leader: usize },
}

/// The kinds of action, for coverage reports.
pub const ACTION_KINDS: [&str; 4] = ["Deliver", "Timeout", "Crash", "Recover"];

impl StepAction {
    pub fn from_action(action: &Action) -> Self {
        match action {
            ActorModelAction::Deliver { src, dst, msg } => StepAction::Deliver {
                src: usize::from(*src),
                dst: usize::from(*dst),
                msg: msg.clone(),
            },
            ActorModelAction::Timeout(id, timer) => StepAction::Timeout {
                actor: usize::from(*id),
                timer: *timer,
            },
            ActorModelAction::Crash(id) => StepAction::Crash {
                actor: usize::from(*id),
            },
            ActorModelAction::Recover(id) => StepAction::Recover {
                actor: usize::from(*id),
            },
            ActorModelAction::SelectRandom { .. } => StepAction::Elect {
                leader: crate::any_leader::elected_by(action)
                    .expect("the model's only random choice is an election")
                    .0 as usize,
            },
            ActorModelAction::Drop(_) => unreachable!("the model's network is not lossy"),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Deliver { .. } => "Deliver",
            StepAction::Timeout { .. } => "Timeout",
            StepAction::Crash { .. } => "Crash",
            StepAction::Recover { .. } => "Recover",
            StepAction::Elect { .. } => "Elect",
        }
    }
}

/// One step of a path, readable and serialisable.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// 1-based.
    pub number: usize,
    pub action: StepAction,
    /// The action in words.
    pub text: String,
    /// The actors whose state changed, described after the step.
    pub effects: Vec<String>,
}

/// A message in the protocol's words.
pub fn fmt_msg(msg: &Msg) -> String {
    match msg {
        Msg::Peer(msg) => fmt_peer_msg(msg),
        Msg::Request(request) => fmt_request(request),
        Msg::Reply(reply) => fmt_reply(reply),
    }
}

fn fmt_peer_msg(msg: &PeerMsg) -> String {
    match msg {
        PeerMsg::LeaderAndIsr(v) => format!("LeaderAndIsr({v:?})"),
        PeerMsg::AlterPartitionResponse { result } => match result {
            AlterPartitionResult::Ok(v) => format!("AlterPartitionResponse(Ok {v:?})"),
            other => format!("AlterPartitionResponse({other:?})"),
        },
        PeerMsg::AlterPartition {
            isr,
            leader_epoch,
            partition_epoch,
            broker_epochs,
        } => {
            let epochs: Vec<String> = broker_epochs
                .iter()
                .map(|(b, e)| format!(" b{b}@{e}"))
                .collect();
            format!(
                "AlterPartition(isr {isr:?} e{leader_epoch} pe{partition_epoch}{})",
                epochs.concat()
            )
        }
        PeerMsg::RegisterBroker { broker_epoch } => {
            format!("RegisterBroker(broker epoch {broker_epoch})")
        }
        PeerMsg::RegisterBrokerResponse => "RegisterBrokerResponse".into(),
        PeerMsg::Fetch {
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            broker_epoch: _,
        } => {
            format!("Fetch(e{leader_epoch} offset {fetch_offset} last epoch {last_fetched_epoch})")
        }
        PeerMsg::FetchResponse {
            leader_epoch,
            fetch_offset,
            result,
        } => {
            let result = match result {
                FetchResult::Records {
                    records,
                    high_watermark,
                } => format!("Records {} hw {high_watermark}", fmt_log(records)),
                FetchResult::DivergingEpoch { epoch, end_offset } => {
                    format!("DivergingEpoch e{epoch} end {end_offset}")
                }
                FetchResult::OffsetOutOfRange { log_end_offset } => {
                    format!("OffsetOutOfRange leo {log_end_offset}")
                }
                other => format!("{other:?}"),
            };
            format!("FetchResponse(e{leader_epoch} offset {fetch_offset} {result})")
        }
        PeerMsg::OffsetsForLeaderEpoch { requested_epoch } => {
            format!("OffsetsForLeaderEpoch(e{requested_epoch})")
        }
        PeerMsg::OffsetsForLeaderEpochResponse { result } => match result {
            OffsetsForLeaderEpochResult::Ok { epoch, end_offset } => {
                format!("OffsetsForLeaderEpochResponse(e{epoch} end {end_offset})")
            }
            OffsetsForLeaderEpochResult::NotLeader => {
                "OffsetsForLeaderEpochResponse(NotLeader)".into()
            }
        },
    }
}

fn fmt_request(request: &ClientRequest) -> String {
    match request {
        ClientRequest::Produce { record_id, acks } => format!("Produce(r{record_id} acks={acks})"),
        ClientRequest::Consume { fetch_offset } => format!("Consume(offset {fetch_offset})"),
    }
}

fn fmt_reply(reply: &ClientReply) -> String {
    match reply {
        ClientReply::ProduceResponse { record_id, result } => match result {
            ProduceResult::Ok { offset } => {
                format!("ProduceResponse(r{record_id} Ok offset {offset})")
            }
            other => format!("ProduceResponse(r{record_id} {other:?})"),
        },
        ClientReply::ConsumeResponse { result } => match result {
            ConsumeResult::Ok {
                records,
                high_watermark,
            } => format!(
                "ConsumeResponse(Ok {} hw {high_watermark})",
                fmt_log(records)
            ),
            ConsumeResult::NotLeader => "ConsumeResponse(NotLeader)".into(),
        },
    }
}

fn fmt_timer(timer: &Timer) -> String {
    format!("{timer:?}")
}

/// One action in words, e.g. `broker 1 → broker 2: FetchResponse(...)`.
pub fn action_summary(cfg: &Config, action: &Action) -> String {
    let name = |id: &Id| actor_name(usize::from(*id), cfg.brokers);
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            format!("{} → {}: {}", name(src), name(dst), fmt_msg(msg))
        }
        ActorModelAction::Timeout(id, timer) => {
            format!("{}: timer {} fires", name(id), fmt_timer(timer))
        }
        ActorModelAction::Crash(id) => format!("{} crashes", name(id)),
        ActorModelAction::Recover(id) => format!("{} restarts", name(id)),
        ActorModelAction::SelectRandom { .. } => match crate::any_leader::elected_by(action) {
            Some(b) => format!("controller elects {} instead", name(&b.id())),
            None => format!("{action:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// One actor's state at a glance.
pub fn fmt_state(state: &State, crashed: bool) -> String {
    let text = match state {
        State::Controller(c) => {
            format!("view {:?}, fenced {:?}, elr {:?}", c.view, c.fenced, c.elr)
        }
        State::Broker(b) => {
            let role = match (&b.leader, b.view) {
                (_, None) => "no view".to_string(),
                (Some(l), Some(v)) => format!(
                    "LEADER {v:?} (start {}{})",
                    l.leader_epoch_start_offset,
                    l.pending_isr
                        .map(|p| format!(", pending isr {p:?}"))
                        .unwrap_or_default()
                ),
                (None, Some(v)) => format!("follower {v:?} {:?}", b.fetch_state),
            };
            let unregistered = if b.registered { "" } else { ", unregistered" };
            format!("log {} hw {}, {role}{unregistered}", fmt_log(&b.log), b.hw)
        }
        State::Client(c) => format!(
            "next r{}, acked {:?}, read {:?}",
            c.next_record, c.acked, c.read
        ),
    };
    if crashed {
        format!("DOWN (last: {text})")
    } else {
        text
    }
}

/// Describes each actor of `after` whose state or liveness differs from `before`.
fn effects(cfg: &Config, before: &SystemState, after: &SystemState) -> Vec<String> {
    (0..after.actor_states.len())
        .filter(|i| {
            before.actor_states[*i] != after.actor_states[*i]
                || before.crashed[*i] != after.crashed[*i]
        })
        .map(|i| {
            format!(
                "{}: {}",
                actor_name(i, cfg.brokers),
                fmt_state(&after.actor_states[i], after.crashed[i])
            )
        })
        .collect()
}

/// Turns a path (as `Path::into_vec` gives it) into numbered, readable steps.
pub fn describe_path(model: &InsyncModel, path: &[(SystemState, Option<Action>)]) -> Vec<Step> {
    path.windows(2)
        .enumerate()
        .filter_map(|(i, pair)| {
            let (before, action) = &pair[0];
            let (after, _) = &pair[1];
            let action = action.as_ref()?;
            Some(Step {
                number: i + 1,
                action: StepAction::from_action(action),
                text: action_summary(&model.cfg, action),
                effects: effects(&model.cfg, before, after),
            })
        })
        .collect()
}

/// The initial state, one line per actor.
pub fn describe_state(model: &InsyncModel, state: &SystemState) -> Vec<String> {
    state
        .actor_states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{}: {}",
                actor_name(i, model.cfg.brokers),
                fmt_state(s, state.crashed[i])
            )
        })
        .collect()
}

/// The Explorer's address for a path: `http://ADDR/#/steps/<init>/<i>/<j>/...`.
pub fn explorer_url(
    model: &InsyncModel,
    addr: &str,
    path: &[(SystemState, Option<Action>)],
) -> String {
    let mut indices = vec![0usize.to_string()];
    for (state, action) in path {
        let Some(action) = action else { continue };
        let mut actions = Vec::new();
        model.actions(state, &mut actions);
        let index = actions
            .iter()
            .position(|a| a == action)
            .expect("action enabled");
        indices.push(index.to_string());
    }
    format!("http://{addr}/#/steps/{}", indices.join("/"))
}

/// A path as a Mermaid `sequenceDiagram`; deterministic for a given path.
pub fn mermaid(model: &InsyncModel, title: &str, path: &[(SystemState, Option<Action>)]) -> String {
    let participant = |i: usize| match i {
        0 => "controller".to_string(),
        i if i <= model.cfg.brokers as usize => format!("b{i}"),
        _ => "client".to_string(),
    };
    let mut out = String::from("sequenceDiagram\n");
    out.push_str(&format!("    title {title}\n"));
    for i in 0..model.cfg.brokers as usize + 2 {
        out.push_str(&format!(
            "    participant {} as {}\n",
            participant(i),
            actor_name(i, model.cfg.brokers)
        ));
    }
    for step in describe_path(model, path) {
        let line = match &step.action {
            StepAction::Deliver { src, dst, msg } => format!(
                "    {}->>{}: {}. {}",
                participant(*src),
                participant(*dst),
                step.number,
                fmt_msg(msg)
            ),
            StepAction::Timeout { actor, timer } => format!(
                "    Note over {}: {}. timer {} fires",
                participant(*actor),
                step.number,
                fmt_timer(timer)
            ),
            StepAction::Crash { actor } => {
                format!(
                    "    Note over {}: {}. CRASH",
                    participant(*actor),
                    step.number
                )
            }
            StepAction::Recover { actor } => {
                format!(
                    "    Note over {}: {}. restart",
                    participant(*actor),
                    step.number
                )
            }
            StepAction::Elect { leader } => format!(
                "    Note over {}: {}. elects {} instead",
                participant(0),
                step.number,
                actor_name(*leader, model.cfg.brokers)
            ),
        };
        out.push_str(&line.replace(';', ","));
        out.push('\n');
    }
    out
}
