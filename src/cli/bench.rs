//! `insync bench`: produce throughput and acknowledgement latency of a local cluster.
//!
//! For each fsync policy it starts a fresh controller and brokers as child processes (the same
//! binary), then for each record size runs `--producers` idempotent producers concurrently,
//! each sending its share of `--records` in batches of `--batch` with `acks=all`, one batch in
//! flight per producer. Throughput counts acknowledged records over the wall time of the run;
//! latency is per produce request (one batch), from send to acknowledgement.

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Args;
use insync_impl::client::{ClientConfig, ProduceAcks, Producer};
use insync_impl::core::PRODUCE_RECORDS_MAX;
use insync_impl::node::local_cluster::{ChildLogs, LocalCluster, LocalClusterSpec};
use insync_impl::storage::FsyncPolicy;

use super::progress::Ticker;

#[derive(Args)]
pub struct BenchArgs {
    /// Records per (fsync policy, record size) run.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Record sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    pub sizes: Vec<usize>,
    /// Fsync policies to compare.
    #[arg(long, value_delimiter = ',', default_value = "lazy,always")]
    pub fsync: Vec<FsyncPolicy>,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    pub producers: u32,
    /// Records per produce request (at most 512).
    #[arg(long, default_value_t = 256)]
    pub batch: u32,
    #[arg(long, default_value_t = 3)]
    pub brokers: u32,
    /// Trace logs (`--trace-log`) off, on, or both (`off,on`: the cost of recording, measured
    /// in one run on the same machine).
    #[arg(long, value_delimiter = ',', default_value = "off", value_parser = parse_on_off)]
    pub trace_log: Vec<bool>,
    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead: the librdkafka producer workload (acks=all, idempotent, --records of each
    /// --sizes) against the Kafka listeners and, with java and mvn installed, against Apache
    /// Kafka started by bench/kafka-cluster.sh in the same run (docs/performance.md).
    #[arg(long)]
    pub kafka: bool,
    /// With --kafka: before each measured run, produce the same workload for this long
    /// (at least 1,000 records) and discard its figures, so both systems are measured warm
    /// (the JVM's JIT compiler included).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub warmup_s: u64,
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}

struct Row {
    fsync: FsyncPolicy,
    traced: bool,
    size: usize,
    records: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// Bytes the nodes' trace logs grew by during the run (0 untraced).
    trace_bytes: u64,
}

pub fn run_bench(args: BenchArgs) -> i32 {
    if args.kafka {
        return super::bench_kafka::run(&args);
    }
    if args.batch == 0 || args.batch as usize > PRODUCE_RECORDS_MAX || args.producers == 0 {
        eprintln!("error: --batch must be within 1..={PRODUCE_RECORDS_MAX}, --producers >= 1");
        return 2;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench(&args)) {
        Ok(rows) => {
            print_rows(&args, &rows);
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            1
        }
    }
}

async fn bench(args: &BenchArgs) -> Result<Vec<Row>, String> {
    let binary = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut rows = Vec::new();
    let runs = args
        .fsync
        .iter()
        .flat_map(|fsync| args.trace_log.iter().map(move |traced| (fsync, *traced)));
    for (fsync, traced) in runs {
        // Removed when dropped, on every way out of this loop.
        let dir = tempfile::Builder::new()
            .prefix(&format!("insync-bench-{fsync}-"))
            .tempdir()
            .map_err(|error| format!("temporary directory: {error}"))?;
        let mut node_args = vec!["--fsync".into(), fsync.to_string()];
        let trace_dir = dir.path().join("trace");
        if traced {
            node_args.extend(["--trace-log".into(), trace_dir.display().to_string()]);
        }
        let spec = LocalClusterSpec {
            binary: binary.clone(),
            brokers: args.brokers,
            dir: dir.path().to_owned(),
            cluster_id: "insync-bench".into(),
            node_args,
            broker_args: Vec::new(),
            base_port: None,
            logs: ChildLogs::Files,
            kafka_topics: Vec::new(),
            partition_slots: None,
        };
        let mut cluster = LocalCluster::start(spec)
            .await
            .map_err(|error| error.to_string())?;
        cluster.wait_ready(Duration::from_secs(20)).await?;
        for size in &args.sizes {
            eprintln!(
                "bench: fsync={fsync} trace-log={} size={size} records={}",
                on_off(traced),
                args.records
            );
            let ticker = Ticker::start("bench", false);
            let trace_before = trace_bytes(&trace_dir);
            let row = run_one(args, &cluster, (*fsync, traced), *size, &ticker).await;
            drop(ticker);
            let trace_bytes = trace_bytes(&trace_dir).saturating_sub(trace_before);
            rows.push(Row {
                trace_bytes,
                ..row?
            });
        }
        cluster.stop(Duration::from_secs(5)).await;
        drop(cluster);
        drop(dir);
    }
    Ok(rows)
}

async fn run_one(
    args: &BenchArgs,
    cluster: &LocalCluster,
    (fsync, traced): (FsyncPolicy, bool),
    size: usize,
    ticker: &Ticker,
) -> Result<Row, String> {
    let config = ClientConfig::new(cluster.bootstrap(), cluster.cluster_id());
    let acked = Arc::new(AtomicU64::new(0));
    let per_producer = args.records / u64::from(args.producers);
    // Warm-up: connections, leader discovery, page cache.
    let mut warm = Producer::new(config.clone(), ProduceAcks::All);
    warm.send(vec![vec![0u8; size]; 64])
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.producers {
        let config = config.clone();
        let batch = args.batch as u64;
        let (acked, status, total) = (Arc::clone(&acked), ticker.status(), args.records);
        tasks.push(tokio::spawn(async move {
            let mut producer = Producer::new(config, ProduceAcks::All);
            let mut latencies = Vec::new();
            let mut sent = 0;
            while sent < per_producer {
                let count = batch.min(per_producer - sent);
                let values = vec![vec![7u8; size]; count as usize];
                let request = Instant::now();
                producer
                    .send_batch(values)
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(request.elapsed());
                sent += count;
                let done = acked.fetch_add(count, Ordering::Relaxed) + count;
                *status.lock().expect("status lock") =
                    format!("{done}/{total} records acknowledged");
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(Row {
        fsync,
        traced,
        size,
        records: per_producer * u64::from(args.producers),
        elapsed,
        p50: percentile(0.50),
        p99: percentile(0.99),
        trace_bytes: 0,
    })
}

/// The size of every trace log in `dir` (0 when there is none). The writers hand their
/// records to the kernel when their queues run empty, so right after the last acknowledgement
/// a few records may still be on their way: the figure is a lower bound by at most that.
fn trace_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

fn print_rows(args: &BenchArgs, rows: &[Row]) {
    if !args.json {
        println!(
            "{} brokers, acks=all, {} producers, {} records per request",
            args.brokers, args.producers, args.batch
        );
        println!(
            "{:<7} {:<5} {:>6} {:>9} {:>12} {:>8} {:>9} {:>9} {:>11}",
            "fsync",
            "trace",
            "bytes",
            "records",
            "records/s",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "trace B/rec"
        );
    }
    for row in rows {
        let seconds = row.elapsed.as_secs_f64();
        let rate = row.records as f64 / seconds;
        let megabytes = rate * row.size as f64 / 1e6;
        let p50 = row.p50.as_secs_f64() * 1e3;
        let p99 = row.p99.as_secs_f64() * 1e3;
        // All nodes' trace bytes per acknowledged record.
        let trace_per_record = row.trace_bytes as f64 / row.records as f64;
        if args.json {
            let line = serde_json::json!({
                "fsync": row.fsync.to_string(), "trace_log": row.traced,
                "record_bytes": row.size, "records": row.records,
                "records_per_s": rate, "mb_per_s": megabytes, "p50_ms": p50, "p99_ms": p99,
                "brokers": args.brokers, "producers": args.producers, "batch": args.batch,
                "trace_bytes": row.trace_bytes, "trace_bytes_per_record": trace_per_record,
            });
            println!("{line}");
        } else {
            println!(
                "{:<7} {:<5} {:>6} {:>9} {:>12.0} {:>8.1} {:>9.2} {:>9.2} {:>11.1}",
                row.fsync.to_string(),
                on_off(row.traced),
                row.size,
                row.records,
                rate,
                megabytes,
                p50,
                p99,
                trace_per_record
            );
        }
    }
}

fn on_off(on: bool) -> &'static str {
    match on {
        true => "on",
        false => "off",
    }
}
