//! The checker's reductions (`model/src/reduction.rs`, docs/reductions.md) lose nothing a
//! property can see: with them on, every property comes out as without them, and every
//! historical scenario is still found.
//!
//! Method: exhaustive DFS of the plain model (`InsyncModel::new`, dead durable state
//! forgotten as before) and of `InsyncModel::reduced` on configurations small enough for CI,
//! comparing every property's status; then the shortest-path search of each scenario on the
//! reduced model. The reduced search must also be smaller, or the reduction does nothing.

use insync_model::checker::{self, CheckOptions, CheckReport, Status};
use insync_model::scenarios;
use insync_model::{Acks, Config, Fsync, InsyncModel, Variant};
use stateright::Model;

fn check(model: &InsyncModel) -> CheckReport {
    let options = CheckOptions {
        shortest: false,
        ..CheckOptions::default()
    };
    checker::run(model, &options, &mut |_, _, _, _| {})
}

fn statuses(report: &CheckReport) -> Vec<(&'static str, Status)> {
    report
        .properties
        .iter()
        .map(|p| (p.name, p.status))
        .collect()
}

/// Checks `cfg` with and without the reductions: the same verdict on every property, both
/// complete, and fewer states with them.
fn assert_agree(cfg: Config) {
    let plain = check(&InsyncModel::new(cfg).forgetting_dead_durability());
    let reduced = check(&InsyncModel::new(cfg).reduced());
    assert!(plain.complete && reduced.complete, "{cfg}: both complete");
    assert_eq!(statuses(&plain), statuses(&reduced), "{cfg}");
    assert!(
        reduced.unique_states < plain.unique_states,
        "{cfg}: {} reduced states, {} without",
        reduced.unique_states,
        plain.unique_states
    );
}

/// Two brokers, every variant at small bounds with lazy fsync (so that the crash's choice of
/// what was saved matters) and one read (so that atomic reads matter).
fn small(variant: Variant) -> Config {
    let mut cfg = Config::new(2).with_variant(variant);
    cfg.retries = 0;
    cfg.min_insync_replicas = 1;
    cfg
}

#[test]
fn reductions_agree_on_every_variant() {
    for variant in Variant::ALL {
        assert_agree(small(variant));
    }
}

#[test]
fn reductions_agree_with_acks_one_fsync_always_and_two_records() {
    let mut acks_one = small(Variant::Kip966);
    acks_one.acks = Acks::One;
    assert_agree(acks_one);
    let mut always = small(Variant::Kip320);
    always.fsync = Fsync::Always;
    assert_agree(always);
    // Two records and two reads: durable ends inside the log, reads that add something twice.
    let mut two = small(Variant::HwTruncation);
    two.records = 2;
    two.expiries = 0;
    two.isr_shrinks = 0;
    two.reads = 2;
    assert_agree(two);
}

/// The 2-broker default, what `insync check --brokers 2` runs.
#[test]
fn reductions_agree_on_the_two_broker_default() {
    assert_agree(Config::new(2));
}

/// Every scenario's shortest search still finds its violation with the reductions on. The
/// long searches (`scenarios::LONG_SEARCHES`) are `-- --ignored`.
fn assert_scenarios_found(long: bool) {
    for scenario in scenarios::all() {
        if scenarios::is_long_search(scenario.name) != long {
            continue;
        }
        let model = InsyncModel::new(scenario.config).reduced();
        let path = checker::shortest_path(&model, scenario.property)
            .unwrap_or_else(|| panic!("{} is no longer found", scenario.name));
        let last = &path.last().expect("a path").0;
        let property = model
            .properties()
            .into_iter()
            .find(|p| p.name == scenario.property)
            .expect("the property");
        assert!(!(property.condition)(&model, last), "{}", scenario.name);
    }
}

#[test]
fn every_scenario_is_found_with_the_reductions() {
    assert_scenarios_found(false);
}

#[test]
#[ignore]
fn long_search_scenarios_are_found_with_the_reductions() {
    assert_scenarios_found(true);
}
