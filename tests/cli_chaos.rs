//! `insync chaos` end to end (issue 10): a seeded run under every fault kind loses and
//! duplicates nothing acknowledged and is live after healing; and a fixed plan that crashes an
//! isolated leader shows, with `--unclean` and `--min-isr 1`, the loss the model predicts in
//! the History verdict, while the default settings under the same plan lose nothing. Every
//! run's trace logs are a behaviour of the model (the Model verdict), the lossy one included:
//! the model with unclean election on permits that loss.
//!
//! Method: run the binary with test-speed clocks and `--json`, and read the report.

mod support;

use serde_json::Value;
use support::cli::insync;
use support::FAST_CLOCKS;

/// Runs `insync chaos ARGS --json` with the test clocks: exit code and the report.
fn chaos(args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["chaos", "--json"];
    all.extend_from_slice(args);
    all.extend_from_slice(FAST_CLOCKS);
    let (code, stdout, stderr) = insync(&all);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!("no JSON report ({error}); exit {code}\nstdout: {stdout}\nstderr: {stderr}")
    });
    (code, report, stderr)
}

fn count(report: &Value, pointer: &str) -> u64 {
    let value = report.pointer(pointer);
    value
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} in {report}"))
}

/// Goal: a seeded minute of every fault kind (the disk fault where a tmpfs can be mounted)
/// loses and duplicates no acknowledged record, no client sees anything forbidden, no node
/// exits that no fault stopped, and the cluster is live after the last heal.
#[test]
fn a_seeded_run_under_every_fault_kind_keeps_every_acknowledged_record() {
    let (code, report, stderr) = chaos(&["--duration", "60s", "--seed", "3"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let disk_skipped = report["skipped"].to_string().contains("disk:");
    for kind in ["kill", "pause", "partition", "restart", "disk"] {
        if kind == "disk" && disk_skipped {
            continue;
        }
        let injected = report["faults"][kind].as_u64().unwrap_or(0);
        assert!(injected >= 1, "no {kind} fault: {report:#}");
    }
    assert!(count(&report, "/acknowledged") > 1_000, "{report:#}");
    for check in [
        "lost",
        "duplicated",
        "poll_skip",
        "nonmonotonic",
        "gone",
        "reordered",
    ] {
        let pointer = format!("/history/{check}/count");
        assert_eq!(count(&report, &pointer), 0, "{check}: {report:#}");
    }
    assert_eq!(
        report["unexpected_exits"],
        Value::Array(Vec::new()),
        "{report:#}"
    );
    assert_eq!(report["liveness"]["failure"], Value::Null, "{report:#}");
    assert!(report["liveness"]["isr_s"].is_number());
    // Every node's trace log is a behaviour of the model of the variant it ran.
    assert_eq!(report["model"]["status"], "passed", "{report:#}");
    assert!(count(&report, "/model/events") > 1_000, "{report:#}");
}

/// Goal: with unclean election and min ISR 1, crashing a leader that was cut off from the
/// other brokers long enough to be alone in the ISR loses records it acknowledged, and the
/// History verdict counts them (exit 1).
#[test]
fn an_unclean_election_after_the_leader_crash_loses_acknowledged_records() {
    let args = [
        "--plan",
        "leader-crash",
        "--unclean",
        "on",
        "--min-isr",
        "1",
    ];
    let (code, report, stderr) = chaos(&args);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert!(count(&report, "/history/lost/count") > 0, "{report:#}");
    assert_eq!(report["passed"], false);
    // The model with unclean election on permits that loss: the run is one of its behaviours.
    assert_eq!(report["model"]["status"], "passed", "{report:#}");
}

/// Goal: the same plan under the default settings (clean election, min ISR 2) loses
/// nothing: the leader alone in the ISR acknowledges nothing, and no out-of-sync broker leads.
#[test]
fn a_clean_election_after_the_same_leader_crash_loses_nothing() {
    let (code, report, stderr) = chaos(&["--plan", "leader-crash"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(count(&report, "/history/lost/count"), 0, "{report:#}");
    assert_eq!(report["model"]["status"], "passed", "{report:#}");
    assert_eq!(
        count(&report, "/faults_total"),
        2,
        "the partition and the kill"
    );
}
