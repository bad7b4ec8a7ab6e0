//! `insync check --shard I/N` and `insync check --merge FILES...` as a CI matrix runs them:
//! every shard writes its `--json` result to a file, the merge reads them all.
//!
//! Goal: the merged verdict is the unsharded check's (every property's status, and the
//! discoveries are the union of the shards'), and the merge refuses files that do not make one
//! check, naming the file. Method: two small 2-broker configurations, one where everything
//! holds and one with a violation (acks=1 loses an acknowledged record), each checked whole and
//! in 3 shards.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::insync;

const ALL_HOLD: &[&str] = &["--brokers", "2", "--reads", "0", "--retries", "0"];
const ACKS_1: &[&str] = &[
    "--brokers",
    "2",
    "--acks",
    "1",
    "--reads",
    "0",
    "--retries",
    "0",
];

fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_owned();
            (name, p["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn discovered(report: &Value) -> BTreeSet<String> {
    statuses(report)
        .into_iter()
        .filter(|(_, s)| s == "violated" || s == "found")
        .map(|(name, _)| name)
        .collect()
}

/// Runs shard `index` of `count` on `model` and writes its `--json` result into `dir`.
fn shard(dir: &Path, model: &[&str], index: u32, count: u32) -> (i32, PathBuf, Value) {
    let spec = format!("{index}/{count}");
    let mut args = vec!["check", "--json", "--shard", spec.as_str()];
    args.extend_from_slice(model);
    let (code, stdout, stderr) = insync(&args);
    assert!(code == 0 || code == 1, "shard {spec}: {stderr}");
    let file = dir.join(format!("shard-{index}-of-{count}.json"));
    std::fs::write(&file, &stdout).expect("write shard result");
    (
        code,
        file,
        serde_json::from_str(&stdout).expect("one JSON object"),
    )
}

fn merge(files: &[&Path]) -> (i32, String, String) {
    let mut args = vec!["check", "--merge"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.push("--json");
    insync(&args)
}

fn merged_agrees_with_unsharded(model: &[&str], expected_code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(model);
    let (whole_code, stdout, _) = insync(&args);
    assert_eq!(whole_code, expected_code);
    let whole: Value = serde_json::from_str(&stdout).unwrap();
    let shards: Vec<_> = (1..=3).map(|i| shard(dir.path(), model, i, 3)).collect();
    let files: Vec<&Path> = shards.iter().map(|(_, f, _)| f.as_path()).collect();
    let (code, stdout, stderr) = merge(&files);
    assert_eq!(code, whole_code, "{stderr}");
    let merged: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(statuses(&merged), statuses(&whole));
    assert_eq!(merged["complete"], true);
    let union: BTreeSet<String> = shards.iter().flat_map(|(_, _, r)| discovered(r)).collect();
    assert_eq!(discovered(&merged), union, "the merge is the union");
    assert_eq!(discovered(&merged), discovered(&whole));
    // Shortest paths come from the same search, so they are the same steps.
    for (p, q) in merged["properties"]
        .as_array()
        .unwrap()
        .iter()
        .zip(whole["properties"].as_array().unwrap())
    {
        assert_eq!(p["steps"], q["steps"], "{}", p["name"]);
    }
    let unique = |r: &Value| r["unique_states"].as_u64().unwrap();
    for (_, _, r) in &shards {
        assert!(unique(r) < unique(&whole), "each shard does a part");
    }
    let sum: u64 = shards.iter().map(|(_, _, r)| unique(r)).sum();
    assert!(sum >= unique(&whole), "together they see every state");
}

#[test]
fn merged_shards_agree_with_the_unsharded_check_when_all_hold() {
    merged_agrees_with_unsharded(ALL_HOLD, 0);
}

#[test]
fn merged_shards_agree_with_the_unsharded_check_on_a_violation() {
    merged_agrees_with_unsharded(ACKS_1, 1);
}

#[test]
fn merge_refuses_files_that_do_not_make_one_check_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, one, _) = shard(dir.path(), ALL_HOLD, 1, 2);
    let (_, two, _) = shard(dir.path(), ALL_HOLD, 2, 2);
    let other = tempfile::tempdir().unwrap();
    let (_, foreign, _) = shard(other.path(), ACKS_1, 2, 2);
    let (code, _, stderr) = merge(&[&one, &two, &one]);
    assert_eq!(code, 2);
    assert!(stderr.contains(one.to_str().unwrap()) && stderr.contains("already given"));
    let (code, _, stderr) = merge(&[&two]);
    assert_eq!(code, 2);
    assert!(stderr.contains("shard 1/2 missing"), "{stderr}");
    let (code, _, stderr) = merge(&[&one, &foreign]);
    assert_eq!(code, 2);
    assert!(stderr.contains(foreign.to_str().unwrap()) && stderr.contains("config"));
    let (_, whole, _) = insync(&["check", "--json", "--brokers", "1"]);
    let unsharded = dir.path().join("unsharded.json");
    std::fs::write(&unsharded, whole).unwrap();
    let (code, _, stderr) = merge(&[&one, &unsharded]);
    assert_eq!(code, 2);
    assert!(stderr.contains(unsharded.to_str().unwrap()) && stderr.contains("not a shard"));
    // The good pair still merges.
    assert_eq!(merge(&[&two, &one]).0, 0);
}

#[test]
fn shard_exits_2_on_a_bad_spec() {
    for spec in ["0/3", "4/3", "3", "a/b", "1/0"] {
        let (code, _, stderr) = insync(&["check", "--brokers", "1", "--shard", spec]);
        assert_eq!(code, 2, "{spec}");
        assert!(stderr.contains("bad shard"), "{spec}: {stderr}");
    }
}
