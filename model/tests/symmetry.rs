//! Symmetry reduction permutes brokers only, and permutes them consistently; renaming
//! brokers is a symmetry of the checked model, and checking with it on gives the same verdicts.

use insync_model::actor::State;
use insync_model::any_leader;
use insync_model::checker::{self, CheckOptions, CheckReport, Status};
use insync_model::model::SystemState;
use insync_model::scenarios;
use insync_model::symmetry::{permute, representative};
use insync_model::walk::random_walk;
use insync_model::{Config, Fsync, InsyncModel, Variant};
use stateright::actor::Id;
use stateright::Model;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Method: take states from seeded random walks. The representative keeps the controller at
/// index 0 and the client at N+1, holds the same broker logs (as a multiset), and every
/// property evaluates the same on it as on the original; so does an explicit swap of brokers.
#[test]
fn representative_keeps_controller_and_client_in_place() {
    let model = InsyncModel::new(Config::new(3));
    let logs = |s: &insync_model::model::SystemState| {
        let mut logs: Vec<_> = (1..=3)
            .map(|b| {
                let broker = s.actor_states[b].as_broker().unwrap();
                (broker.log.clone(), broker.hw)
            })
            .collect();
        logs.sort();
        logs
    };
    let mut checked = 0;
    for seed in 0..40 {
        let walk = random_walk(&model, seed, 80);
        for (state, _) in walk.path.iter().step_by(5) {
            let swapped = permute(state, [0, 2, 1, 3, 4].into_iter().map(Id::from).collect());
            for other in [representative(state), swapped] {
                assert!(matches!(&*other.actor_states[0], State::Controller(_)));
                assert!(matches!(&*other.actor_states[4], State::Client(_)));
                assert_eq!(logs(&other), logs(state));
                for p in model.properties() {
                    let (a, b) = ((p.condition)(&model, state), (p.condition)(&model, &other));
                    assert_eq!(a, b, "{} differs under permutation", p.name);
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100);
}

/// A fixed hash of a state, to compare sets of successors.
fn hash_of(state: &SystemState) -> u64 {
    let mut hasher = DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

/// What one step of `state` can lead to, an election and its choice taken together: a step
/// whose election had a choice leads to a state that records it (`History::electing`), from
/// which the choice steps elect another eligible broker and every other step goes on as from
/// the lowest-id outcome. So such a state counts as its outcomes, every eligible leader.
fn outcomes(model: &InsyncModel, state: &SystemState) -> Vec<SystemState> {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    let mut outcomes = Vec::new();
    for next in actions
        .into_iter()
        .filter_map(|a| model.next_state(state, a))
    {
        if next.history.electing.is_none() {
            outcomes.push(next);
            continue;
        }
        let mut choices = Vec::new();
        model.actions(&next, &mut choices);
        let chosen = choices
            .into_iter()
            .filter(|a| any_leader::elected_by(a).is_some());
        outcomes.extend(chosen.filter_map(|a| model.next_state(&next, a)));
        let mut lowest = next;
        lowest.history.electing = None;
        outcomes.push(lowest);
    }
    outcomes
}

/// The outcomes of `state`'s steps, hashed and sorted, each renamed by `plan` first.
fn successors(model: &InsyncModel, state: &SystemState, plan: Option<&[Id]>) -> Vec<u64> {
    let mut hashes: Vec<u64> = outcomes(model, state)
        .iter()
        .map(|next| match plan {
            Some(plan) => hash_of(&permute(next, plan.to_vec())),
            None => hash_of(next),
        })
        .collect();
    hashes.sort_unstable();
    hashes
}

/// Every renaming of brokers 1..=3 (controller 0 and client 4 stay), as plans.
fn renamings() -> Vec<Vec<Id>> {
    let orders = [
        [1, 2, 3],
        [1, 3, 2],
        [2, 1, 3],
        [2, 3, 1],
        [3, 1, 2],
        [3, 2, 1],
    ];
    orders
        .iter()
        .map(|o| [0, o[0], o[1], o[2], 4].into_iter().map(Id::from).collect())
        .collect()
}

/// The actions of `state` and what each leads to, for a failure's message.
fn describe(model: &InsyncModel, state: &SystemState) -> String {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    let lines: Vec<String> = actions
        .into_iter()
        .map(|a| {
            let next = model.next_state(state, a.clone()).map(|n| hash_of(&n));
            format!("  {} -> {next:?}", model.format_action(&a))
        })
        .collect();
    format!("{:?}\n{}", state.history, lines.join("\n"))
}

/// The states on which renaming brokers does not commute with the model's steps: the
/// successors of a renamed state are not the renamed successors.
fn asymmetric_states(model: &InsyncModel, seeds: std::ops::Range<u64>) -> (usize, usize) {
    let (mut checked, mut asymmetric) = (0, 0);
    for seed in seeds {
        let walk = random_walk(model, seed, 70);
        for (state, _) in walk.path.iter().step_by(3) {
            for plan in renamings().iter().skip(1) {
                let renamed = permute(state, plan.clone());
                if successors(model, &renamed, None) != successors(model, state, Some(plan)) {
                    if asymmetric == 0 {
                        eprintln!("first asymmetric state (seed {seed}, renaming {plan:?}):");
                        eprintln!("{}", describe(model, state));
                        eprintln!("renamed:\n{}", describe(model, &renamed));
                    }
                    asymmetric += 1;
                }
                checked += 1;
            }
        }
    }
    (checked, asymmetric)
}

/// Method: along seeded random walks of the checked model (every reduction on, any eligible
/// replica may be elected), rename the brokers of each state in every way and compare the
/// successors of the renamed state with the renamed successors. They are the same: renaming
/// brokers is a symmetry of the checked model's steps, which is what makes the symmetry
/// reduction sound (docs/reductions.md, "Broker symmetry").
#[test]
fn renaming_brokers_commutes_with_every_step_of_the_checked_model() {
    let model = InsyncModel::new(Config::new(3)).reduced().electing_any();
    let (checked, asymmetric) = asymmetric_states(&model, 0..40);
    assert!(checked > 1000, "{checked} states and renamings checked");
    assert_eq!(asymmetric, 0, "of {checked}");
}

/// The same comparison on the plain model, whose controller elects the lowest eligible id,
/// finds states where renaming brokers changes what can happen next: the comparison above can
/// fail, and symmetry would be unsound there.
#[test]
fn lowest_id_election_is_not_a_symmetry() {
    let model = InsyncModel::new(Config::new(3)).forgetting_dead_durability();
    let (checked, asymmetric) = asymmetric_states(&model, 0..40);
    assert!(asymmetric > 0, "no asymmetric state among {checked}");
}

fn check(model: &InsyncModel, symmetry: bool) -> CheckReport {
    let options = CheckOptions {
        shortest: false,
        symmetry,
        ..CheckOptions::default()
    };
    checker::run(model, &options, &mut |_, _, _, _| {})
}

fn statuses(report: &CheckReport) -> Vec<(&'static str, Status)> {
    let all = report.properties.iter();
    all.map(|p| (p.name, p.status)).collect()
}

/// Checks `cfg` (every reduction on) three ways: electing the lowest id (`insync check`), and
/// electing any eligible replica with and without symmetry (`--symmetry on` is the last).
/// Symmetry gives the same verdict on every property with fewer states. Electing any eligible
/// replica has more behaviours: every invariant comes out the same here, and every witness
/// of the lowest-id model is still found (it may find more: `kip-279` reaches
/// `divergent_truncation` with one crash only when a replica other than the lowest is elected).
fn assert_symmetry_agrees(cfg: Config) {
    let lowest = check(&InsyncModel::new(cfg).reduced(), false);
    let any = InsyncModel::new(cfg).reduced().electing_any();
    let (off, on) = (check(&any, false), check(&any, true));
    assert!(
        lowest.complete && off.complete && on.complete,
        "{cfg}: complete"
    );
    for (p, (name, status)) in lowest.properties.iter().zip(statuses(&off)) {
        let more = p.status == Status::NotFound && status == Status::Found;
        assert!(
            p.status == status || more,
            "{cfg}: {name} is {status:?} electing any"
        );
    }
    assert_eq!(statuses(&off), statuses(&on), "{cfg}: symmetry");
    assert!(
        on.unique_states < off.unique_states,
        "{cfg}: {} states with symmetry, {} without",
        on.unique_states,
        off.unique_states
    );
}

/// Three brokers at bounds CI affords: one crash or one expiry, no read.
fn three(variant: Variant, crashes: u8, expiries: u8) -> Config {
    let mut cfg = Config::new(3).with_variant(variant);
    (cfg.crashes, cfg.expiries, cfg.reads) = (crashes, expiries, 0);
    cfg.isr_shrinks = 0;
    cfg.max_epoch = 3;
    cfg.fsync = Fsync::Always;
    cfg
}

#[test]
fn symmetry_agrees_on_every_variant_at_three_brokers() {
    for variant in Variant::ALL {
        assert_symmetry_agrees(three(variant, 1, 0));
        assert_symmetry_agrees(three(variant, 0, 1));
    }
}

/// One leader-driven ISR shrink and an expiry, and lazy fsync with a crash under min ISR 1:
/// the elections with a choice, the shrink and the crash's choice of what was saved.
#[test]
fn symmetry_agrees_with_a_shrink_and_with_a_lazy_crash() {
    let mut shrink = three(Variant::Kip966, 0, 1);
    shrink.isr_shrinks = 1;
    assert_symmetry_agrees(shrink);
    let mut lazy = three(Variant::Kip320, 1, 0);
    (lazy.fsync, lazy.min_insync_replicas) = (Fsync::Lazy, 1);
    assert_symmetry_agrees(lazy);
}

/// Every scenario's violation is still found by `--symmetry on`'s model (every reduction on,
/// any eligible replica elected) with symmetry: a depth-first search for that property alone, stopping at its discovery.
#[test]
fn every_scenario_is_found_with_symmetry() {
    for scenario in scenarios::all() {
        if scenario.name == "kip-320-bug" {
            continue; // the long search (model/tests/reductions.rs, `-- --ignored`)
        }
        let mut model = InsyncModel::new(scenario.config).reduced().electing_any();
        let all = insync_model::properties::all();
        model.only = all.iter().position(|p| p.name == scenario.property);
        let report = check(&model, true);
        let status = report.status(scenario.property);
        assert_eq!(status, Some(Status::Violated), "{}", scenario.name);
    }
}
