//! `insync check --shard I/N` and `insync check --merge FILES...`: printing only; the method
//! (a shared prefix, the frontier dealt round-robin, the merge's refusals) is in
//! `insync_model::shard`.

use std::path::PathBuf;
use std::str::FromStr;

use insync_model::checker::{CheckOptions, Status, Strategy};
use insync_model::shard::{self, ShardSpec};
use insync_model::InsyncModel;
use serde_json::Value;

use super::check::print_report;
use super::usage;

/// Runs one shard; exits 1 when it found a counterexample (a witness it did not find may be in
/// another shard: the merge says), else 0.
pub fn run_shard(
    model: &InsyncModel,
    options: &CheckOptions,
    spec: &str,
    json: bool,
    addr: &str,
    progress: insync_model::checker::Progress,
) -> i32 {
    let spec = match ShardSpec::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => return usage(e),
    };
    if options.strategy == Strategy::Random {
        return usage("--shard needs an exhaustive --strategy (dfs or bfs)".into());
    }
    let result = shard::run_shard(model, options, spec, progress);
    let code = i32::from(!result.report.violated().is_empty());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("report serialises")
        );
        return code;
    }
    eprintln!();
    println!(
        "shard {spec}: the paths whose first {} fault-budget choices hash to {}, and every \
         state before them",
        result.shard.choices, spec.index
    );
    print_report(model, &result.report, addr);
    println!("(a witness not found here may be in another shard: `insync check --merge` decides)");
    code
}

/// Reads every shard result and prints the merged verdict: exit 0 when every invariant holds
/// and every witness is found, 1 when not, 2 when the files do not make one check.
pub fn run_merge(files: &[PathBuf], json: bool) -> i32 {
    let mut results = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => return usage(format!("{name}: {e}")),
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(doc) => results.push((name, doc)),
            Err(e) => return usage(format!("{name}: not a JSON shard result: {e}")),
        }
    }
    let merged = match shard::merge(&results) {
        Ok(merged) => merged,
        Err(e) => return usage(e),
    };
    let properties = merged["properties"].as_array().cloned().unwrap_or_default();
    let ok = properties
        .iter()
        .all(|p| p["status"] == "holds" || p["status"] == "found");
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&merged).expect("JSON serialises")
        );
    } else {
        print_merged(&merged, &properties);
    }
    i32::from(!ok)
}

fn print_merged(merged: &Value, properties: &[Value]) {
    let sharding = &merged["sharding"];
    println!(
        "configuration: {}",
        merged["configuration"].as_str().unwrap_or("?")
    );
    println!(
        "{} shards, each owning the paths whose first {} fault-budget choices hash to it",
        sharding["count"], sharding["choices"]
    );
    println!(
        "states over all shards (repeats counted): {} ({} unique per shard, summed), \
         slowest shard {:.1} s, {:.1} s in all, {}",
        merged["states"],
        merged["unique_states"],
        merged["seconds"].as_f64().unwrap_or(0.0),
        merged["seconds_total"].as_f64().unwrap_or(0.0),
        if merged["complete"] == true {
            "complete (fixed point in every shard)"
        } else {
            "NOT complete"
        }
    );
    for p in properties {
        let status = match p["status"].as_str().unwrap_or_default() {
            "holds" => Status::Holds,
            "violated" => Status::Violated,
            "found" => Status::Found,
            _ => Status::NotFound,
        };
        let steps = p["steps"].as_array().map_or(0, Vec::len);
        let length = if steps == 0 {
            String::new()
        } else {
            format!(" ({steps} steps)")
        };
        println!(
            "  {:<22} {:<9} {}{length}",
            p["name"].as_str().unwrap_or("?"),
            p["expectation"].as_str().unwrap_or("?"),
            status.words()
        );
    }
    for p in properties.iter().filter(|p| p["status"] == "violated") {
        println!(
            "\n{} VIOLATED; shortest counterexample:",
            p["name"].as_str().unwrap_or("?")
        );
        for step in p["steps"].as_array().into_iter().flatten() {
            println!(
                "  {:>2}. {}",
                step["number"],
                step["text"].as_str().unwrap_or("?")
            );
            for effect in step["effects"].as_array().into_iter().flatten() {
                println!("        {}", effect.as_str().unwrap_or("?"));
            }
        }
    }
}
