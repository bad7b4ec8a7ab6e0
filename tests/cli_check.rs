//! `insync check` as a user runs it: the `--json` report's shape and the exit codes (0 when
//! every invariant holds and every witness is found, 1 when not, 2 on a bad flag), at bounds
//! small enough to take a second or two.

mod support;

use support::cli::insync;

#[test]
fn check_json_reports_every_property_and_exits_0_when_all_hold() {
    let (code, stdout, stderr) = insync(&["check", "--brokers", "2", "--min-isr", "2", "--json"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["variant"], "kip-966");
    assert_eq!(report["complete"], true);
    assert!(report["unique_states"].as_u64().unwrap() > 1000);
    assert_eq!(report["config"]["brokers"], 2);
    let properties = report["properties"].as_array().unwrap();
    for p in properties {
        let status = p["status"].as_str().unwrap();
        assert!(status == "holds" || status == "found", "{p}");
        assert!(p["expectation"] == "always" || p["expectation"] == "sometimes");
    }
    let names: Vec<&str> = properties
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "no_acked_record_lost",
        "strong_isr",
        "acked_record_durable",
        "isr_shrink",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn check_exits_1_on_a_violation_with_its_shortest_path() {
    let (code, stdout, _) = insync(&["check", "--scenario", "kip-966-bug", "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let lost = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "no_acked_record_lost")
        .unwrap();
    assert_eq!(lost["status"], "violated");
    let steps = lost["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 12);
    assert!(steps[0]["action"]["kind"].is_string() && steps[0]["text"].is_string());
}

/// acks=1 is not acks=all: its acknowledgements have their own invariant, and losing one is a
/// violation (exit 1) with its path.
#[test]
fn check_acks_1_exits_1_with_the_lost_acknowledgement() {
    let (code, stdout, _) = insync(&["check", "--brokers", "2", "--acks", "1", "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let status = |name: &str| {
        let properties = report["properties"].as_array().unwrap();
        let p = properties.iter().find(|p| p["name"] == name).unwrap();
        (p["status"].clone(), p["steps"].as_array().unwrap().len())
    };
    let (lost, steps) = status("no_acks1_record_lost");
    assert_eq!(lost, "violated");
    assert!(steps > 0, "the path is printed");
    assert_eq!(
        status("no_acked_record_lost").0,
        "holds",
        "no acks=all acknowledgement"
    );
    let others_pass = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != "no_acks1_record_lost")
        .all(|p| p["status"] == "holds" || p["status"] == "found");
    assert!(others_pass, "the loss alone makes it fail: {report}");
}

#[test]
fn check_diagram_of_a_scenario_is_mermaid() {
    let (code, stdout, _) = insync(&["check", "--scenario", "kip-966-bug", "--diagram", "mermaid"]);
    assert_eq!(code, 1, "a counterexample");
    assert!(stdout.starts_with("sequenceDiagram\n    title no_acked_record_lost\n"));
    let (_, again, _) = insync(&["check", "--scenario", "kip-966-bug", "--diagram", "mermaid"]);
    assert_eq!(stdout, again, "deterministic");
}

#[test]
fn check_exits_2_on_a_bad_flag() {
    for args in [
        &["check", "--brokers", "9"][..],
        &["check", "--variant", "kip-000"],
        &["check", "--scenario", "no-such-bug"],
        &["check", "--diagram", "svg"],
        &["check", "--no-such-flag"],
    ] {
        let (code, _, stderr) = insync(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.is_empty());
    }
}

/// The README sends users to `insync check --help` for the scenarios: it must name them all.
#[test]
fn check_help_names_every_scenario() {
    let (code, stdout, stderr) = insync(&["check", "--help"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    for name in insync_model::scenarios::names() {
        assert!(
            stdout.contains(name),
            "--help does not name {name}:\n{stdout}"
        );
    }
}
