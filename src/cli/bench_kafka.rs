//! `insync bench --kafka`: the same librdkafka producer workload (`bench/kafka_produce.py`:
//! acks=all, idempotent, `--sizes` records) against an insync cluster's Kafka listeners and,
//! where Java and Maven are installed, against a 3-broker Apache Kafka cluster started on
//! loopback by `bench/kafka-cluster.sh` in the same run; prints records/s, MB/s, p50/p99
//! latency and the ratio. Both run Kafka's default durability (no fsync per append:
//! `--fsync lazy` here, Kafka's flush defaults there), replication factor 3, min ISR 2.
//!
//! Each measured run follows a warm-up of `--warmup-s` seconds of the same workload on the
//! same producer, so neither system is measured cold.
//!
//! Each workload runs at 1 partition (topic `insync`) and at 6 (topic `insync6`, declared
//! with `--topic insync6:6` on insync and created by the producer's AdminClient on Kafka).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use insync_impl::node::local_cluster::{ChildLogs, LocalCluster, LocalClusterSpec};
use serde_json::Value;

use super::bench::BenchArgs;

/// The partition counts measured, each with its topic.
const TOPICS: [(u32, &str); 2] = [(1, "insync"), (6, "insync6")];

/// One measured row: partitions, record size, the producer's JSON summary.
type Row = (u32, usize, Value);

/// The repository's `bench/` directory, where the scripts are.
fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench")
}

pub fn run(args: &BenchArgs) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut insync = Vec::new();
    for (partitions, topic) in TOPICS {
        match runtime.block_on(insync_runs(args, partitions, topic)) {
            Ok(rows) => insync.extend(rows),
            Err(error) => {
                eprintln!("error: {error}");
                return 1;
            }
        }
    }
    let kafka = apache_kafka_runs(args).unwrap_or_else(|reason| {
        eprintln!("bench: Apache Kafka not measured: {reason}");
        Vec::new()
    });
    print_rows(&insync, &kafka);
    0
}

async fn insync_runs(args: &BenchArgs, partitions: u32, topic: &str) -> Result<Vec<Row>, String> {
    let dir = tempfile::Builder::new()
        .prefix("insync-bench-kafka-")
        .tempdir()
        .map_err(|error| format!("temporary directory: {error}"))?;
    let spec = LocalClusterSpec {
        binary: std::env::current_exe().map_err(|error| error.to_string())?,
        brokers: args.brokers,
        dir: dir.path().to_owned(),
        cluster_id: "insync-bench".into(),
        node_args: vec!["--fsync".into(), "lazy".into()],
        broker_args: Vec::new(),
        base_port: None,
        logs: ChildLogs::Files,
        kafka_topics: vec![format!("{topic}:{partitions}")],
        partition_slots: None,
    };
    let mut cluster = LocalCluster::start(spec)
        .await
        .map_err(|error| error.to_string())?;
    cluster.wait_ready(Duration::from_secs(20)).await?;
    let bootstrap: Vec<&str> = cluster
        .kafka_addresses()
        .values()
        .map(String::as_str)
        .collect();
    let bootstrap = bootstrap.join(",");
    let rows = workload_rows(args, "insync", &bootstrap, partitions, topic);
    cluster.stop(Duration::from_secs(5)).await;
    rows
}

/// Starts Apache Kafka with the script, runs the workload, stops it (also on failure).
fn apache_kafka_runs(args: &BenchArgs) -> Result<Vec<Row>, String> {
    for tool in ["java", "mvn"] {
        let found = Command::new(tool).arg("-version").output().is_ok();
        if !found {
            return Err(format!("{tool} is not installed"));
        }
    }
    let script = bench_dir().join("kafka-cluster.sh");
    let dir = std::env::temp_dir().join("insync-bench-apache-kafka");
    eprintln!(
        "bench: starting Apache Kafka ({}; jars cached in {})",
        script.display(),
        dir.display()
    );
    let started = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .output();
    let started = started.map_err(|error| format!("{}: {error}", script.display()))?;
    let stdout = String::from_utf8_lossy(&started.stdout);
    let rows = match (started.status.success(), stdout.lines().last()) {
        (true, Some(bootstrap)) => {
            let mut rows = Vec::new();
            for (partitions, topic) in TOPICS {
                match workload_rows(args, "kafka", bootstrap.trim(), partitions, topic) {
                    Ok(more) => rows.extend(more),
                    Err(error) => return stop_kafka(&script, &dir, Err(error)),
                }
            }
            Ok(rows)
        }
        _ => Err(format!(
            "kafka-cluster.sh start failed: {}",
            String::from_utf8_lossy(&started.stderr)
        )),
    };
    stop_kafka(&script, &dir, rows)
}

/// Stops the Kafka brokers the script started; passes `rows` on.
fn stop_kafka(
    script: &Path,
    dir: &Path,
    rows: Result<Vec<Row>, String>,
) -> Result<Vec<Row>, String> {
    let _ = Command::new("bash")
        .arg(script)
        .arg("stop")
        .arg(dir)
        .status();
    rows
}

fn workload_rows(
    args: &BenchArgs,
    system: &str,
    bootstrap: &str,
    partitions: u32,
    topic: &str,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for size in &args.sizes {
        eprintln!(
            "bench: {system} partitions={partitions} size={size} records={}",
            args.records
        );
        let output = Command::new("python3")
            .arg(bench_dir().join("kafka_produce.py"))
            .args([
                bootstrap,
                topic,
                &args.records.to_string(),
                &size.to_string(),
                &partitions.to_string(),
                &args.warmup_s.to_string(),
            ])
            .output()
            .map_err(|error| format!("python3: {error} (pip install confluent-kafka)"))?;
        if !output.status.success() {
            return Err(format!(
                "kafka_produce.py: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let row: Value =
            serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())?;
        rows.push((partitions, *size, row));
    }
    Ok(rows)
}

fn print_rows(insync: &[Row], kafka: &[Row]) {
    println!("3 brokers, acks=all, idempotent librdkafka producer");
    println!(
        "{:<8} {:>5} {:>6} {:>12} {:>8} {:>9} {:>9} {:>8}",
        "system", "parts", "size", "records/s", "MB/s", "p50 ms", "p99 ms", "errors"
    );
    for (system, rows) in [("insync", insync), ("kafka", kafka)] {
        for (partitions, size, row) in rows {
            let number = |key: &str| row[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "{system:<8} {partitions:>5} {size:>6} {:>12.0} {:>8.2} {:>9.2} {:>9.2} {:>8}",
                number("records_per_s"),
                number("mb_per_s"),
                number("p50_ms"),
                number("p99_ms"),
                row["errors"]
            );
        }
    }
    for (partitions, size, ours) in insync {
        let same = |(other_partitions, other_size, _): &&Row| {
            other_partitions == partitions && other_size == size
        };
        if let Some((_, _, theirs)) = kafka.iter().find(same) {
            let ratio = ours["records_per_s"].as_f64().unwrap_or(0.0)
                / theirs["records_per_s"].as_f64().unwrap_or(f64::NAN);
            println!(
                "ratio insync/kafka records/s at {partitions} partition(s), {size} bytes: {ratio:.2}"
            );
        }
    }
}
