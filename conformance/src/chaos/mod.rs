//! `insync chaos`: a real-time cluster under a seeded schedule of faults, with producers and
//! consumers, ending in three verdicts (docs/chaos.md).
//!
//! - `schedule` — the seeded fault schedule and the fixed plans (pure);
//! - `proxy`    — the fault-injecting TCP proxy every node reaches every other through;
//! - `disk`     — size-limited tmpfs data directories, filled and freed;
//! - `cluster`  — the supervised nodes, and each fault done and undone;
//! - `workload` — the producers and consumers, recording the history;
//! - this file  — the run: start, faults until the duration is over, heal, the verdicts.
//!
//! The verdicts: **History** (`crate::history`: nothing acknowledged lost, nothing
//! duplicated, no consumer skipped, went back or saw a record later gone), **Liveness** (after
//! the last heal a new record commits, and every broker is back in the ISR, each within
//! [`LIVENESS_WITHIN`]) and **Model** (`crate::validate` over the trace logs every node
//! wrote: passed only when the validator accepted the whole run).

pub mod cluster;
pub mod disk;
pub mod proxy;
pub mod schedule;
pub mod verdict;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use insync_impl::client::{ProduceAcks, Producer};
use insync_impl::protocol::View;
use serde::Serialize;
use tokio::time::Instant;

use crate::history::{self, History, HistoryVerdict};
use cluster::{Applied, ChaosCluster, ClusterSpec};
use schedule::{FaultKind, Schedule, ScheduleClocks, Step};
use workload::{Counters, Workload, WorkloadSpec};

pub use verdict::ModelVerdict;

/// After the last heal, a new record must commit, and every broker rejoin the ISR, within
/// this long (generous: the cluster may be re-electing and a follower catching up).
pub const LIVENESS_WITHIN: Duration = Duration::from_secs(30);
/// How long the producers go on after the last heal before the final read.
pub const AFTER_HEAL: Duration = Duration::from_secs(3);
/// How often the driver looks at the controller while waiting for the ISR.
const ISR_POLL: Duration = Duration::from_millis(100);

/// Which faults, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// [`Schedule`]: seeded, one fault at a time, until the duration is over.
    Seeded { seed: u64, kinds: Vec<FaultKind> },
    /// [`schedule::leader_crash_plan`], once.
    LeaderCrash,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct ChaosSpec {
    pub cluster: ClusterSpec,
    pub plan: Plan,
    /// Faults are injected until this long has passed (the plan `leader-crash` ignores it).
    pub duration: Duration,
    pub clocks: ScheduleClocks,
    pub producers: u32,
    pub consumers: u32,
    pub batch: u32,
    pub batch_interval: Duration,
    /// Where every node writes its trace log (`--trace-log`), validated at the end.
    pub trace_dir: std::path::PathBuf,
}

/// The Liveness verdict and its figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LivenessVerdict {
    pub within_s: f64,
    /// From the last heal to a new record's acknowledgement.
    pub commit_s: Option<f64>,
    /// From the last heal to every broker in the controller's ISR.
    pub isr_s: Option<f64>,
    pub brokers: u32,
    /// What was wrong, when it failed.
    pub failure: Option<String>,
}

impl LivenessVerdict {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    pub faults: BTreeMap<&'static str, u64>,
    pub faults_total: u64,
    /// Fault kinds asked for but not done, and why.
    pub skipped: Vec<String>,
    /// Nodes that exited although no fault stopped them (a full disk stops a broker).
    pub unexpected_exits: Vec<String>,
    pub acknowledged: u64,
    pub failed_batches: u64,
    /// `None` when the final read could not be made (no leader): see `history_unchecked`.
    pub history: Option<HistoryVerdict>,
    pub history_unchecked: Option<String>,
    pub liveness: LivenessVerdict,
    pub model: ModelVerdict,
    pub wall_s: f64,
    pub passed: bool,
}

/// Shared with the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub counters: Arc<Counters>,
    pub faults: Mutex<BTreeMap<&'static str, u64>>,
}

impl Progress {
    /// `faults 12 (kill 3, pause 2), 4520 records acknowledged, 4400 consumed`.
    pub fn line(&self) -> String {
        let faults = self.faults.lock().expect("progress lock");
        let total: u64 = faults.values().sum();
        let kinds: Vec<String> = faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "faults {total} ({}), {} records acknowledged, {} consumed",
            kinds.join(", "),
            self.counters.acknowledged.load(Ordering::Relaxed),
            self.counters.consumed.load(Ordering::Relaxed),
        )
    }

    fn faults(&self) -> BTreeMap<&'static str, u64> {
        self.faults.lock().expect("progress lock").clone()
    }
}

/// Runs a chaos run, keeping `status` (the progress line) up to date. `Err` only when the
/// run could not be made (a node would not start); what the run found is in the report.
pub async fn run(spec: &ChaosSpec, status: Arc<Mutex<String>>) -> Result<ChaosReport, String> {
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let wants_disks = match &spec.plan {
        Plan::Seeded { kinds, .. } => kinds.contains(&FaultKind::Disk),
        Plan::LeaderCrash => false,
    };
    let cluster_spec = ClusterSpec {
        disks: wants_disks,
        ..spec.cluster.clone()
    };
    let (mut cluster, no_disks) = ChaosCluster::start(&cluster_spec).await?;
    let skipped: Vec<String> = no_disks
        .map(|why| format!("disk: {why}"))
        .into_iter()
        .collect();
    let config = cluster.client_config();
    wait_for_leader(&cluster, LIVENESS_WITHIN).await?;
    let workload_spec = WorkloadSpec {
        config: config.clone(),
        producers: spec.producers,
        consumers: spec.consumers,
        batch: spec.batch,
        batch_interval: spec.batch_interval,
    };
    let workload = Workload::start(&workload_spec, &progress.counters);
    let ticker = spawn_progress(&progress, status);
    let mut unexpected_exits = Vec::new();
    let driven = drive(spec, &mut cluster, &progress, &mut unexpected_exits).await;
    driven.inspect_err(|_| ticker.abort())?;
    unexpected_exits.extend(cluster.revive().await?);
    let healed = Instant::now();
    let liveness = liveness(&cluster, healed).await;
    // The producers go on after the heal; this wait is the run's length, not an event.
    tokio::time::sleep_until(healed + AFTER_HEAL).await;
    let (producers, consumers) = workload.stop().await?;
    ticker.abort();
    let acknowledged: Vec<_> = producers
        .iter()
        .flat_map(|p| p.acknowledged.clone())
        .collect();
    let limit = acknowledged.len() * 2 + 10_000;
    // Without a leader there is no final read: the History is then not checked, and says so.
    let final_read = workload::read_all(config, limit).await;
    cluster.stop().await;
    let acknowledged_count = acknowledged.len() as u64;
    let (history, history_unchecked) = match final_read {
        Ok(final_read) => {
            let history = History {
                acknowledged,
                consumers,
                final_read,
            };
            (Some(history::check(&history)), None)
        }
        Err(error) => (None, Some(error)),
    };
    let model = verdict::model(&spec.trace_dir).await;
    let faults = progress.faults();
    let passed =
        history.as_ref().is_some_and(HistoryVerdict::passed) && liveness.passed() && model.passed();
    Ok(ChaosReport {
        faults_total: faults.values().sum(),
        faults,
        skipped,
        unexpected_exits,
        acknowledged: acknowledged_count,
        failed_batches: producers.iter().map(|p| p.failed_batches).sum(),
        history,
        history_unchecked,
        liveness,
        model,
        wall_s: started.elapsed().as_secs_f64(),
        passed,
    })
}

/// Takes the plan's steps until it ends (seeded: until the duration is over, after a heal).
async fn drive(
    spec: &ChaosSpec,
    cluster: &mut ChaosCluster,
    progress: &Progress,
    unexpected_exits: &mut Vec<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + spec.duration;
    let mut seeded = match &spec.plan {
        Plan::Seeded { seed, kinds } => {
            let kinds: Vec<FaultKind> = kinds
                .iter()
                .copied()
                .filter(|kind| *kind != FaultKind::Disk || cluster.has_disks())
                .collect();
            let schedule = (!kinds.is_empty())
                .then(|| Schedule::new(*seed, &kinds, cluster.brokers(), spec.clocks));
            Some(schedule)
        }
        Plan::LeaderCrash => None,
    };
    let mut applied: BTreeMap<u32, Applied> = BTreeMap::new();
    let mut steps: Vec<Step> = match seeded {
        None => schedule::leader_crash_plan(spec.clocks),
        Some(_) => Vec::new(),
    };
    steps.reverse();
    loop {
        if steps.is_empty() {
            match seeded.as_mut() {
                Some(Some(schedule)) if Instant::now() < deadline => {
                    steps = schedule.next_round().into_iter().rev().collect();
                }
                Some(None) if Instant::now() < deadline => {
                    // No fault kind can be done: the run is the workload alone.
                    tokio::time::sleep_until(deadline).await;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        let step = steps.pop().expect("refilled above");
        take_step(step, cluster, progress, &mut applied, unexpected_exits).await?;
    }
}

async fn take_step(
    step: Step,
    cluster: &mut ChaosCluster,
    progress: &Progress,
    applied: &mut BTreeMap<u32, Applied>,
    unexpected_exits: &mut Vec<String>,
) -> Result<(), String> {
    match step {
        Step::Inject { id, fault } => {
            tracing::info!(?fault, "inject");
            let done = cluster.inject(fault).await;
            let done = done.map_err(|error| format!("injecting {fault:?}: {error}"))?;
            let mut faults = progress.faults.lock().expect("progress lock");
            *faults.entry(fault.kind().name()).or_default() += 1;
            applied.insert(id, done);
        }
        Step::Heal { id } => {
            let done = applied.remove(&id).expect("a heal follows its inject");
            let disk = matches!(done, Applied::Filled(_));
            tracing::info!(?done, "heal");
            cluster.heal(done).await?;
            let revived = cluster.revive().await?;
            // A full disk stops its broker by design; any other exit is unexplained.
            if !disk {
                unexpected_exits.extend(revived);
            }
        }
        // The schedule's holds and gaps: the faults last this long, there is no event.
        Step::Wait(duration) => tokio::time::sleep(duration).await,
        Step::AwaitLeaderAlone { within } => {
            let alone = |view: &View| view.leader.is_some_and(|l| view.isr == [l].into());
            await_view(cluster, within, "the leader alone in the ISR", alone).await?;
        }
    }
    Ok(())
}

/// The Liveness verdict: from `healed`, a new record commits and every broker is in the
/// controller's ISR, within [`LIVENESS_WITHIN`].
async fn liveness(cluster: &ChaosCluster, healed: Instant) -> LivenessVerdict {
    let mut verdict = LivenessVerdict {
        within_s: LIVENESS_WITHIN.as_secs_f64(),
        brokers: cluster.brokers(),
        ..LivenessVerdict::default()
    };
    let mut config = cluster.client_config();
    config.delivery_timeout = LIVENESS_WITHIN;
    let mut producer = Producer::new(config, ProduceAcks::All);
    match producer.send_batch(vec![b"liveness".to_vec()]).await {
        Ok(_) => verdict.commit_s = Some(healed.elapsed().as_secs_f64()),
        Err(error) => verdict.failure = Some(format!("no record committed: {error}")),
    }
    let everyone: Vec<u32> = (1..=cluster.brokers()).collect();
    let deadline = healed + LIVENESS_WITHIN;
    let mut last: String;
    loop {
        match cluster.controller_view().await {
            Ok(view) if view.isr.iter().copied().eq(everyone.iter().copied()) => {
                verdict.isr_s = Some(healed.elapsed().as_secs_f64());
                break;
            }
            Ok(view) => last = format!("{view:?}"),
            Err(error) => last = error,
        }
        if Instant::now() >= deadline {
            let failure = format!("not every broker in the ISR; controller: {last}");
            verdict.failure.get_or_insert(failure);
            break;
        }
        // Nothing announces an ISR change to the operator: polled, against the deadline.
        tokio::time::sleep(ISR_POLL).await;
    }
    verdict
}

/// Waits until the controller names a leader, before the clients start.
async fn wait_for_leader(cluster: &ChaosCluster, within: Duration) -> Result<(), String> {
    let led = |view: &View| view.leader.is_some();
    await_view(cluster, within, "a leader", led).await
}

/// Polls the controller's view until `condition` holds, at most `within`: nothing announces
/// a view change to the operator.
async fn await_view(
    cluster: &ChaosCluster,
    within: Duration,
    what: &str,
    condition: impl Fn(&View) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let view = cluster.controller_view().await;
        if view.as_ref().is_ok_and(&condition) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not {what} within {within:?}: {view:?}"));
        }
        tokio::time::sleep(ISR_POLL).await;
    }
}

/// Refreshes the status line from the counters; aborted at the end of the run.
fn spawn_progress(
    progress: &Arc<Progress>,
    status: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    let progress = Arc::clone(progress);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            every.tick().await;
            *status.lock().expect("status lock") = progress.line();
        }
    })
}
