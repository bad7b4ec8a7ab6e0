//! Conformance (issue #5): model traces replayed step by step on real `insync` processes in
//! stepped mode, through the harness's router (docs/conformance.md).
//!
//! Method: each test generates its traces from the model in memory, replays every one on a
//! fresh controller and brokers (child processes of this crate's binary), and asserts on the
//! summary: zero divergences for the default variant's cover and random walks; at least one
//! divergence when the nodes run another variant (the harness is sensitive); for each named
//! scenario (each variant's own bug, `insync check --scenario`), its counterexample replayed
//! with zero divergences on nodes running the variant, and the violated property seen on the
//! real nodes. `kip-320-bug`'s shortest path costs a search of about 5 minutes (16.1 M states,
//! an ignored model test), so it is replayed from `tests/traces/`, and another test re-runs
//! the model along that file so it cannot go stale.

use std::path::PathBuf;

use insync_conformance::replay::{Consequence, ReplayOptions};
use insync_conformance::report::{self, Entry, Reachable, Summary};
use insync_conformance::sources;
use insync_conformance::trace::{ModelTrace, TraceFile};
use insync_model::msg::{ClientReply, Msg, ProduceResult, Timer};
use insync_model::{scenarios, Config, Fsync, InsyncModel, Variant};
use stateright::actor::ActorModelAction;

fn options() -> ReplayOptions {
    ReplayOptions::new(PathBuf::from(env!("CARGO_BIN_EXE_insync")))
}

/// Two brokers (min ISR 2, the default), one record, one ISR shrink, one read; no crash, no
/// session expiry and no re-send or release (those have their own cover below, which keeps
/// this one, replayed in full, within the CI budget): the CI cover configuration
/// (docs/performance.md).
fn small() -> Config {
    let mut cfg = Config::new(2);
    cfg.crashes = 0;
    cfg.expiries = 0;
    cfg.isr_shrinks = 1;
    cfg.reads = 1;
    cfg.retries = 0;
    cfg
}

fn entries(traces: Vec<ModelTrace>) -> Vec<Entry> {
    traces
        .into_iter()
        .enumerate()
        .map(|(i, trace)| Entry {
            file: PathBuf::from(format!(
                "(in memory) {} trace {}",
                trace.meta.source.name(),
                i + 1
            )),
            trace,
        })
        .collect()
}

async fn replay(
    traces: Vec<ModelTrace>,
    options: &ReplayOptions,
    reachable: Option<Reachable>,
) -> Summary {
    let summary = report::replay_all(&entries(traces), options, reachable, |_, _| {}).await;
    eprintln!("{}", report::text(&summary));
    summary
}

/// Goal: the default variant's transition cover of a small configuration replays with no
/// divergence, and takes every transition reachable within the bounds.
#[tokio::test]
async fn cover_of_the_default_variant_replays_clean() {
    let model = InsyncModel::new(small());
    let set = sources::cover(&model, 100_000);
    assert!(
        set.complete,
        "the small configuration must be enumerated to a fixed point"
    );
    let reachable = Reachable {
        states: set.reachable_states,
        transitions: set.reachable_transitions,
        complete: true,
    };
    let summary = replay(set.traces, &options(), Some(reachable)).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    assert_eq!(summary.covered.transitions.len(), reachable.transitions);
    assert_eq!(summary.covered.states.len(), reachable.states);
    let kinds = report::names(&summary.covered.action_kinds);
    assert_eq!(
        kinds,
        ["Deliver", "Timeout"],
        "no crash in this configuration"
    );
    // Every message type this configuration can send: the epoch lookup is kip-101/kip-279's,
    // registration needs a restart, a new view (`LeaderAndIsr`) an expiry (random walks).
    let types = report::names(&summary.covered.message_types);
    for t in [
        "AlterPartition",
        "AlterPartitionResponse",
        "Consume",
        "ConsumeResponse",
        "Fetch",
        "FetchResponse",
        "Produce",
        "ProduceResponse",
    ] {
        assert!(types.contains(&t), "{t} not exercised: {types:?}");
    }
}

/// Goal: the timers that end a wait (protocol.md §4.12) replay clean: a re-sent fetch puts
/// two in flight and a released parked fetch an empty answer, on the real nodes as in the
/// model. Method: the full transition cover of two brokers with one re-send or release.
#[tokio::test]
async fn cover_of_the_wait_timers_replays_clean() {
    let mut cfg = Config::new(2);
    (cfg.crashes, cfg.expiries, cfg.isr_shrinks, cfg.reads) = (0, 0, 0, 1);
    cfg.retries = 1;
    let set = sources::cover(&InsyncModel::new(cfg), 100_000);
    assert!(set.complete, "enumerated to a fixed point");
    let summary = replay(set.traces, &options(), None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    assert_eq!(summary.covered.transitions.len(), set.reachable_transitions);
    for kind in ["FetchRetry", "ParkedRelease"] {
        assert!(
            summary.covered.timer_kinds.contains(kind),
            "{kind} not fired"
        );
    }
}

/// Goal: every action kind, every message type and every timer kind, crashes and restarts
/// included, in the default variant and the epoch-lookup variant. Method: a cover capped at a
/// few thousand states, which then covers every kind with few traces.
#[tokio::test]
async fn every_action_kind_and_message_type_replays_clean() {
    let mut traces = Vec::new();
    for variant in [Variant::Kip966, Variant::Kip279] {
        let mut cfg = Config::new(2).with_variant(variant);
        (cfg.isr_shrinks, cfg.retries) = (0, 0);
        let set = sources::cover(&InsyncModel::new(cfg), 4_000);
        traces.extend(set.traces);
    }
    // Every timer kind: shrinks, rejoins and the wait timers, each budgeted once.
    let mut cfg = Config::new(2);
    (cfg.isr_shrinks, cfg.rejoins, cfg.retries) = (1, 1, 1);
    traces.extend(sources::cover(&InsyncModel::new(cfg), 2_000).traces);
    let summary = replay(traces, &options(), None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    assert!(summary.action_kinds_missing().is_empty());
    assert!(
        summary.message_types_missing().is_empty(),
        "{:?}",
        summary.message_types_missing()
    );
    assert!(
        summary.timer_kinds_missing().is_empty(),
        "{:?}",
        summary.timer_kinds_missing()
    );
}

/// Goal: `NotEnoughReplicasAfterAppend` (docs/protocol.md §4.7) means the same on real nodes.
/// Method: the cover of `kip-320` (where the HW is not held back by min ISR, so a shrink after
/// an append lets it pass the record on the leader alone) at the CI bounds; the traces in which
/// the client is refused that way (327 of them; the first 24, to keep the suite short) replay
/// on `kip-320` nodes with no divergence.
#[tokio::test]
async fn not_enough_replicas_after_append_replays_clean() {
    let model = InsyncModel::new(small().with_variant(Variant::Kip320));
    let refused = |trace: &ModelTrace| {
        trace.path.iter().any(|(_, action)| {
            matches!(
                action,
                Some(stateright::actor::ActorModelAction::Deliver {
                    msg: Msg::Reply(ClientReply::ProduceResponse {
                        result: ProduceResult::NotEnoughReplicasAfterAppend,
                        ..
                    }),
                    ..
                })
            )
        })
    };
    let traces: Vec<ModelTrace> = sources::cover(&model, 100_000)
        .traces
        .into_iter()
        .filter(refused)
        .take(24)
        .collect();
    assert!(!traces.is_empty(), "the cover reaches the refusal");
    let summary = replay(traces, &options(), None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
}

/// Goal: seeded random walks, longer than the cover's paths, replay with no divergence.
#[tokio::test]
async fn random_walks_replay_clean() {
    let mut cfg = small();
    cfg.records = 2;
    cfg.expiries = 1;
    cfg.retries = 2;
    let traces = sources::random(&InsyncModel::new(cfg), 1, 8, 80);
    let summary = replay(traces, &options(), None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    assert!(
        summary.steps >= 8 * 10,
        "walks are long: {} steps",
        summary.steps
    );
}

/// The CI's sharp configuration: two brokers, two records (an off-by-one in the HW or in when
/// an acknowledgement is sent is invisible with one), a crash, a session expiry and an ISR
/// shrink, under the given variant and fsync setting.
fn sharp(variant: Variant, fsync: Fsync) -> Config {
    let mut cfg = Config::new(2).with_variant(variant);
    cfg.records = 2;
    cfg.crashes = 1;
    cfg.expiries = 1;
    cfg.isr_shrinks = 1;
    cfg.fsync = fsync;
    cfg
}

/// States the sharp cover enumerates: its graph is far larger, so the cover takes every action
/// kind and message type instead of every transition; the random walks below go deeper.
const SHARP_COVER_STATES_MAX: usize = 20_000;

/// What a set of traces exercises that a sharp cover must: every timer kind the nodes fire
/// (`Lag`: an ISR shrink; `Expire`: a session expiry), a crash and a recovery, and a state in
/// which the client holds two acknowledgements.
fn sharp_gaps(traces: &[ModelTrace]) -> Vec<&'static str> {
    let mut seen = std::collections::BTreeSet::new();
    for trace in traces {
        for (state, action) in &trace.path {
            let client = state
                .actor_states
                .last()
                .expect("the client is the last actor");
            if let insync_model::actor::State::Client(client) = &**client {
                if client.acked.len() >= 2 {
                    seen.insert("two acknowledged records");
                }
            }
            match action {
                Some(ActorModelAction::Timeout(_, Timer::Lag(_))) => seen.insert("Lag"),
                Some(ActorModelAction::Timeout(_, Timer::Expire(_))) => seen.insert("Expire"),
                Some(ActorModelAction::Crash(_)) => seen.insert("Crash"),
                Some(ActorModelAction::Recover(_)) => seen.insert("Recover"),
                _ => false,
            };
        }
    }
    [
        "two acknowledged records",
        "Lag",
        "Expire",
        "Crash",
        "Recover",
    ]
    .into_iter()
    .filter(|wanted| !seen.contains(wanted))
    .collect()
}

/// Goal: the conformance suite is as sharp as the model for `variant` under `fsync`: every
/// trace of the sharp configuration replays with no divergence, and together the traces take
/// both records to acknowledgement, shrink the ISR, expire a session and crash and recover a
/// broker (its recovered disk compared with the model's storage). Method: a capped cover
/// (every action kind and message type) plus seeded random walks.
async fn sharp_cover_replays_clean(variant: Variant, fsync: Fsync, seed: u64) {
    let model = InsyncModel::new(sharp(variant, fsync));
    let mut traces = sources::cover(&model, SHARP_COVER_STATES_MAX).traces;
    traces.extend(sources::random(&model, seed, 20, 100));
    let gaps = sharp_gaps(&traces);
    assert!(
        gaps.is_empty(),
        "{variant:?}/{fsync:?} traces miss {gaps:?}"
    );
    let summary = replay(traces, &options(), None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    assert!(summary.action_kinds_missing().is_empty());
}

#[tokio::test]
async fn sharp_cover_of_the_default_variant_with_fsync_always_replays_clean() {
    sharp_cover_replays_clean(Variant::Kip966, Fsync::Always, 11).await;
}

#[tokio::test]
async fn sharp_cover_of_the_default_variant_with_fsync_lazy_replays_clean() {
    sharp_cover_replays_clean(Variant::Kip966, Fsync::Lazy, 21).await;
}

#[tokio::test]
async fn sharp_cover_of_kip279_with_fsync_always_replays_clean() {
    sharp_cover_replays_clean(Variant::Kip279, Fsync::Always, 31).await;
}

#[tokio::test]
async fn sharp_cover_of_kip279_with_fsync_lazy_replays_clean() {
    sharp_cover_replays_clean(Variant::Kip279, Fsync::Lazy, 41).await;
}

/// Goal: the harness is sensitive: the default variant's traces replayed on nodes running
/// `hw-truncation` diverge, and the report names the step and the differing field.
#[tokio::test]
async fn default_traces_on_hw_truncation_nodes_diverge() {
    let mut cfg = small();
    cfg.expiries = 1;
    let set = sources::cover(&InsyncModel::new(cfg), 100_000);
    let traces: Vec<ModelTrace> = set.traces.into_iter().take(40).collect();
    let mut options = options();
    options.impl_variant = Some(Variant::HwTruncation);
    let summary = replay(traces, &options, None).await;
    assert!(
        !summary.divergences.is_empty(),
        "hw-truncation nodes must diverge"
    );
    let first = &summary.divergences[0];
    assert!(first.divergence.step > 0);
    assert!(
        first.command.contains("--variant hw-truncation"),
        "{}",
        first.command
    );
}

/// Replays `trace` (a counterexample) on nodes running its variant: zero divergences, and
/// the consequence read from the real nodes.
async fn replay_counterexample(trace: ModelTrace) -> Consequence {
    let mut options = options();
    options.consequence = true;
    let summary = replay(vec![trace], &options, None).await;
    assert!(summary.divergences.is_empty(), "{}", report::text(&summary));
    summary.consequences[0].1.clone()
}

/// The named scenario's shortest counterexample (BFS), replayed.
async fn scenario_on_real_nodes(name: &str) -> Consequence {
    let scenario = scenarios::find(name).expect("a scenario");
    let model = InsyncModel::new(scenario.config);
    let trace = sources::discovery(&model, scenario.property)
        .expect("a known property")
        .expect("the model finds the counterexample");
    replay_counterexample(trace).await
}

/// An acknowledged record that real `consume` does not return.
fn assert_acked_record_lost(name: &str, c: &Consequence) {
    assert!(
        !c.acked.is_empty(),
        "{name}: the brokers acknowledged: {c:?}"
    );
    assert!(
        !c.missing.is_empty(),
        "{name}: an acknowledged record must be gone: {c:?}"
    );
}

/// Goal: KIP-101's first scenario on real `hw-truncation` nodes: a follower restarts (a fast
/// restart: it stays in the ISR), truncates to its stale HW on its first view and is elected;
/// the acknowledged record is gone from what `consume` returns.
#[tokio::test]
async fn kip101_bug_loses_an_acknowledged_record_on_real_nodes() {
    let c = scenario_on_real_nodes("kip-101-bug").await;
    assert_eq!(c.property.as_deref(), Some("no_acked_record_lost"));
    assert_acked_record_lost("kip-101-bug", &c);
}

/// Goal: KIP-279's bug on real `kip-101` nodes: after two quick leader changes the new leader
/// lacks a committed record (its `Inspect`ed log holds another record at that offset, and
/// `consume` does not return the committed one there).
#[tokio::test]
#[ignore = "its trace is the kip-279-bug shortest-path search, about a minute (scenarios::LONG_SEARCHES): the long step"]
async fn kip279_bug_leader_lacks_a_committed_record_on_real_nodes() {
    let c = scenario_on_real_nodes("kip-279-bug").await;
    assert_eq!(c.property.as_deref(), Some("leader_completeness"));
    let leader = c.evidence.leader.expect("a real leader");
    let ((offset, record, epoch), _) = c.evidence.committed_missing[0];
    let leader_log = &c.evidence.logs[&leader].0;
    assert_ne!(
        leader_log.get(offset as usize),
        Some(&(offset, record, epoch)),
        "the leader lacks the committed record"
    );
    assert_eq!(c.leader, Some(leader), "consume reads from that leader");
    assert!(
        !c.consumed.contains(&(offset, record, epoch)),
        "consume does not return the committed record {record} of epoch {epoch} at offset \
         {offset}: {:?}",
        c.consumed
    );
}

/// The committed `kip-320-bug` trace (generated by `insync traces --scenario kip-320-bug
/// --out tests/traces/`; its search takes about 5 minutes (docs/performance.md), and the test
/// below keeps it a valid path of the current model).
fn kip320_bug_trace() -> ModelTrace {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces/counterexample-kip-279-strong_isr.json");
    let parsed = TraceFile::read(&file).expect("the committed trace parses");
    let model = InsyncModel::new(parsed.meta.config);
    parsed
        .to_path(&model)
        .unwrap_or_else(|e| panic!("the committed trace no longer matches the model: {e}"))
}

/// Goal: the committed `kip-320-bug` trace is still a path of the current model (the reader
/// re-runs the model along it) with the scenario's configuration, and it ends in a
/// `strong_isr` violation; so the replay below cannot go stale.
#[test]
fn kip320_bug_trace_is_a_current_counterexample() {
    let trace = kip320_bug_trace();
    let scenario = scenarios::find("kip-320-bug").unwrap();
    assert_eq!(trace.meta.config, scenario.config);
    assert_eq!(trace.meta.property.as_deref(), Some("strong_isr"));
    let model = InsyncModel::new(trace.meta.config);
    let strong_isr = stateright::Model::properties(&model)
        .into_iter()
        .find(|p| p.name == "strong_isr")
        .unwrap();
    let last = &trace.path.last().unwrap().0;
    assert!(!(strong_isr.condition)(&model, last), "ends in a violation");
    let before = &trace.path[trace.path.len() - 2].0;
    assert!((strong_isr.condition)(&model, before), "and only there");
}

/// Goal: KIP-320's bug on real `kip-279` nodes: a fetch from an old leader epoch counts toward
/// the HW of the same broker leading again; an ISR member's real log then disagrees with the
/// real leader's below the HW.
#[tokio::test]
async fn kip320_bug_isr_member_disagrees_with_the_leader_on_real_nodes() {
    let c = replay_counterexample(kip320_bug_trace()).await;
    assert_eq!(c.property.as_deref(), Some("strong_isr"));
    let e = &c.evidence;
    let leader = e.leader.expect("a real leader");
    let member = e.isr_disagreeing[0];
    let hw = e.leader_hw as usize;
    let (leader_log, member_log) = (&e.logs[&leader].0, &e.logs[&member].0);
    assert!(
        member_log.len() < hw || member_log[..hw] != leader_log[..hw],
        "ISR member {member} {member_log:?} vs leader {leader} {leader_log:?} below HW {hw}"
    );
}

/// Goal: KIP-966's bug ("last replica standing", min ISR 2) on real `kip-320` nodes: the
/// record is acknowledged on both brokers, the last ISR member loses it in a (power-loss)
/// crash, stays in the ISR and is re-elected. At the end of the trace the other real broker
/// still has the record in its log; once the frames in flight arrive it follows the empty
/// leader and truncates it too, and `consume` does not return it.
#[tokio::test]
async fn kip966_bug_loses_an_acknowledged_record_on_real_nodes() {
    let c = scenario_on_real_nodes("kip-966-bug").await;
    assert_eq!(c.property.as_deref(), Some("no_acked_record_lost"));
    assert_acked_record_lost("kip-966-bug", &c);
    let leader = c.evidence.leader.expect("a real leader");
    let holders: Vec<u32> = c
        .evidence
        .logs
        .iter()
        .filter(|(_, (log, _))| log.iter().any(|(_, id, _)| c.missing.contains(id)))
        .map(|(b, _)| *b)
        .collect();
    assert!(
        !holders.is_empty() && !holders.contains(&leader),
        "a broker other than the leader {leader} held the lost record: {c:?}"
    );
}

/// Goal: acks=1 on real `kip-966` nodes: the deposed leader acknowledges its own append, and
/// the real partition does not return the record.
#[tokio::test]
async fn acks_1_loses_an_acknowledged_record_on_real_nodes() {
    let c = scenario_on_real_nodes("acks-1-loss").await;
    assert_eq!(c.property.as_deref(), Some("no_acks1_record_lost"));
    assert!(c.leader.is_some(), "a real leader answers consume: {c:?}");
    assert_acked_record_lost("acks-1-loss", &c);
}

/// Goal: `min_insync_replicas = 1` on real `kip-966` nodes: the leader alone in the ISR
/// acknowledges a record and loses it in a crash; nothing returns it.
#[tokio::test]
async fn min_isr_one_loses_an_acknowledged_record_on_real_nodes() {
    let c = scenario_on_real_nodes("min-isr-1-loss").await;
    assert_eq!(c.property.as_deref(), Some("acked_record_durable"));
    assert_acked_record_lost("min-isr-1-loss", &c);
}

/// Goal: `kip-966` as Kafka ships it on real nodes (docs/protocol.md §4.10, last known
/// leader): both brokers lose the acknowledged record in crashes, and once both have
/// registered again the real controller elects the last known leader, empty; the real
/// partition does not return the record, as the model predicts.
#[tokio::test]
async fn last_known_leader_loses_what_two_crashes_lost_on_real_nodes() {
    let c = scenario_on_real_nodes("last-leader-loss").await;
    assert_eq!(c.property.as_deref(), Some("no_acked_record_lost"));
    assert!(c.leader.is_some(), "the last known leader leads: {c:?}");
    assert_acked_record_lost("last-leader-loss", &c);
}
