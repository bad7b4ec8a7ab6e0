//! `cargo bench -p insync-model`: the default check as `insync check` runs it (3 brokers,
//! kip-966, DFS, 2 threads, the reductions of docs/reductions.md),
//! printing states/s, unique states, time and peak RSS (VmHWM).

use insync_model::checker::{self, CheckOptions};
use insync_model::{Config, InsyncModel};

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let cfg = Config::new(3);
    let options = CheckOptions {
        shortest: false,
        ..CheckOptions::default()
    };
    let report = checker::run(
        &InsyncModel::new(cfg).reduced(),
        &options,
        &mut |_, _, _, _| {},
    );
    println!("configuration: {cfg}");
    println!(
        "states {} unique {} max depth {} complete {} time {:.1} s states/s {:.0} peak RSS {} MB",
        report.states,
        report.unique_states,
        report.max_depth,
        report.complete,
        report.seconds,
        report.states as f64 / report.seconds,
        peak_rss_kb().unwrap_or(0) / 1024
    );
}
