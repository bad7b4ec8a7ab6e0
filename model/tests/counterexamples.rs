//! docs/counterexamples.md shows, for each named scenario, the shortest counterexample as a
//! Mermaid diagram. This test fails when a committed diagram differs from what the checker
//! produces now. Regenerate them with:
//!
//! `UPDATE_DOCS=1 cargo test --profile checked -p insync-model --test counterexamples -- --include-ignored`
//!
//! The `kip-320-bug` diagram needs a search of 16.1 M states (about 6 min of CPU, 0.6 GB) and
//! `kip-279-bug`'s about a minute (`scenarios::LONG_SEARCHES`), so they are compared only by the
//! `#[ignore]`d test, in the long CI step (`-- --ignored`).

use insync_model::checker;
use insync_model::describe;
use insync_model::scenarios::{self, Scenario};
use insync_model::InsyncModel;

fn docs_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/counterexamples.md")
}

/// What `insync check --scenario NAME --diagram mermaid` prints.
fn diagram(scenario: &Scenario) -> String {
    let model = InsyncModel::new(scenario.config);
    let path = checker::shortest_path(&model, scenario.property).expect("a counterexample");
    describe::mermaid(&model, scenario.property, &path)
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- BEGIN {name} -->\n```mermaid\n"),
        format!("```\n<!-- END {name} -->"),
    )
}

/// Compares (or, with `UPDATE_DOCS=1`, rewrites) the diagrams of `names`.
fn compare(names: &[&str]) {
    let path = docs_path();
    let mut text = std::fs::read_to_string(&path).expect("docs/counterexamples.md exists");
    let update = std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for name in names {
        let scenario = scenarios::find(name).expect("scenario");
        let (begin, end) = markers(name);
        let start = text
            .find(&begin)
            .unwrap_or_else(|| panic!("no {begin:?} in the docs"))
            + begin.len();
        let stop = start + text[start..].find(&end).expect("end marker");
        let now = diagram(&scenario);
        if text[start..stop] != now {
            if update {
                text.replace_range(start..stop, &now);
            } else {
                stale.push(*name);
            }
        }
    }
    if update {
        std::fs::write(&path, text).expect("write docs");
    }
    assert!(
        stale.is_empty(),
        "docs/counterexamples.md is stale for {stale:?}; regenerate with `UPDATE_DOCS=1 cargo test \
         --profile checked -p insync-model --test counterexamples -- --include-ignored`"
    );
}

#[test]
fn committed_diagrams_match_the_checker() {
    let names: Vec<&str> = scenarios::names()
        .into_iter()
        .filter(|n| !scenarios::is_long_search(n))
        .collect();
    compare(&names);
}

#[test]
#[ignore = "kip-320-bug: 16.1 M states, about 6 min of CPU and 0.6 GB; kip-279-bug: about a minute: the long step (-- --ignored)"]
fn committed_long_search_diagrams_match_the_checker() {
    compare(&scenarios::LONG_SEARCHES);
}

/// The same path drawn twice is the same text, and two searches find the same path.
#[test]
fn mermaid_is_deterministic() {
    let scenario = scenarios::find("kip-966-bug").unwrap();
    assert_eq!(diagram(&scenario), diagram(&scenario));
    let first = diagram(&scenario);
    assert!(first.starts_with("sequenceDiagram\n    title no_acked_record_lost\n"));
    assert!(!first.contains(';'), "Mermaid ends a message at ';'");
}
