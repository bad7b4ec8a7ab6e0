//! The clients of a chaos run: idempotent `acks=all` producers and following consumers, each a
//! task that records what it saw for the history checker, until told to stop.
//!
//! What "idempotent" means here (impl `client::Producer`): a producer has a random producer id
//! and numbers its records; one batch is in flight at a time and every retry of it reuses its
//! sequence numbers, so a retry after a lost acknowledgement is recognised by the leader and
//! not appended twice, and a new leader holding a prefix of the batch gets only the rest. A
//! batch that still fails after the delivery timeout is given up (its records are
//! indeterminate: they may or may not be in the log), and the producer takes a new producer
//! id; the workload never sends those values again, so any record seen twice is a duplicate
//! made by the cluster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use insync_impl::client::{idle, ClientConfig, Consumer, ProduceAcks, Producer};
use insync_impl::protocol::RecordId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::history::{ConsumerLog, Read};

/// How long a consumer waits after an empty poll before polling again (the protocol has no
/// long poll for consumers; `insync consume --follow` waits the same way).
const EMPTY_POLL_WAIT: Duration = Duration::from_millis(50);

/// Shared counters for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub acknowledged: AtomicU64,
    pub failed_batches: AtomicU64,
    pub consumed: AtomicU64,
}

/// How the clients behave.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub config: ClientConfig,
    pub producers: u32,
    pub consumers: u32,
    /// Records per produce request.
    pub batch: u32,
    /// Pace of each producer: one batch per this long at most (a bound on the log's growth,
    /// so a long run's final read stays small).
    pub batch_interval: Duration,
}

/// What one producer had acknowledged.
#[derive(Debug, Default)]
pub struct ProducerLog {
    pub acknowledged: Vec<RecordId>,
    pub failed_batches: u64,
}

/// The running clients.
#[derive(Debug)]
pub struct Workload {
    stop: watch::Sender<bool>,
    producers: Vec<JoinHandle<ProducerLog>>,
    consumers: Vec<JoinHandle<Vec<ConsumerLog>>>,
}

impl Workload {
    pub fn start(spec: &WorkloadSpec, counters: &Arc<Counters>) -> Workload {
        let (stop, stopped) = watch::channel(false);
        let producers = (0..spec.producers)
            .map(|worker| {
                let (spec, counters) = (spec.clone(), Arc::clone(counters));
                tokio::spawn(produce(worker, spec, stopped.clone(), counters))
            })
            .collect();
        let consumers = (0..spec.consumers)
            .map(|_| {
                let (config, counters) = (spec.config.clone(), Arc::clone(counters));
                tokio::spawn(consume(config, stopped.clone(), counters))
            })
            .collect();
        Workload {
            stop,
            producers,
            consumers,
        }
    }

    /// Stops every client after its request in flight, and returns what they saw.
    pub async fn stop(self) -> Result<(Vec<ProducerLog>, Vec<ConsumerLog>), String> {
        self.stop.send_replace(true);
        let mut producers = Vec::new();
        for task in self.producers {
            producers.push(task.await.map_err(|error| format!("producer: {error}"))?);
        }
        let mut consumers = Vec::new();
        for task in self.consumers {
            consumers.extend(task.await.map_err(|error| format!("consumer: {error}"))?);
        }
        Ok((producers, consumers))
    }
}

/// One producer: batches of distinct values until stopped.
async fn produce(
    worker: u32,
    spec: WorkloadSpec,
    stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> ProducerLog {
    let mut producer = Producer::new(spec.config.clone(), ProduceAcks::All);
    let mut log = ProducerLog::default();
    // Mirrors the producer's numbering: from 0 for each producer id, one per record.
    let mut next_sequence: u32 = 0;
    let mut written: u64 = 0;
    let mut pace = tokio::time::interval(spec.batch_interval);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        pace.tick().await;
        let producer_id = producer.producer_id();
        let values: Vec<Vec<u8>> = (0..u64::from(spec.batch))
            .map(|index| format!("w{worker}-{}", written + index).into_bytes())
            .collect();
        written += u64::from(spec.batch);
        match producer.send_batch(values).await {
            Ok(_) => {
                assert_eq!(producer.producer_id(), producer_id, "kept its id");
                let sequences = next_sequence..next_sequence + spec.batch;
                log.acknowledged.extend(sequences.map(|sequence| RecordId {
                    producer_id,
                    sequence,
                }));
                next_sequence += spec.batch;
                let count = u64::from(spec.batch);
                counters.acknowledged.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(%error, "batch given up");
                assert_ne!(
                    producer.producer_id(),
                    producer_id,
                    "a new id after a failure"
                );
                next_sequence = 0;
                log.failed_batches += 1;
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    log
}

/// One consumer: polls from offset 0 on; a consumer that gives up (the delivery timeout) is
/// replaced by a new incarnation at the position reached.
async fn consume(
    config: ClientConfig,
    stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> Vec<ConsumerLog> {
    let mut logs = Vec::new();
    let mut from = 0;
    while !*stop.borrow() {
        let mut consumer = Consumer::new(config.clone(), from);
        let mut log = ConsumerLog {
            from,
            reads: Vec::new(),
        };
        while !*stop.borrow() {
            let Ok(records) = consumer.poll().await else {
                break;
            };
            if records.is_empty() {
                idle(EMPTY_POLL_WAIT).await;
            }
            counters
                .consumed
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            log.reads.extend(records.iter().map(|record| Read {
                offset: record.offset,
                id: RecordId {
                    producer_id: record.producer_id,
                    sequence: record.sequence,
                },
            }));
        }
        from = consumer.position();
        logs.push(log);
    }
    logs
}

/// Everything from offset 0 to the end: the final read of the history.
pub async fn read_all(config: ClientConfig, limit: usize) -> Result<Vec<Read>, String> {
    let mut consumer = Consumer::new(config, 0);
    let records = consumer
        .read_to_end(limit)
        .await
        .map_err(|error| format!("final read: {error}"))?;
    let reads = records.iter().map(|record| Read {
        offset: record.offset,
        id: RecordId {
            producer_id: record.producer_id,
            sequence: record.sequence,
        },
    });
    Ok(reads.collect())
}
