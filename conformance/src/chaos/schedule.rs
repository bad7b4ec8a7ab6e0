//! The fault schedule of a chaos run: a seeded, reproducible sequence of steps (inject a fault,
//! wait, heal it, wait), or a fixed plan. Pure: which node a step names may be symbolic (the
//! leader, a follower), resolved by the driver when the step runs, so a plan can say "crash
//! the leader" without knowing who leads.
//!
//! One fault is active at a time in a seeded schedule, and each is healed before the next:
//! the model's fault budget is one fault in flight too, and a run that loses a record under
//! one fault at a time names the fault. The first faults cover every enabled kind once (in a
//! seeded order), so even a short run injects each kind.

use std::time::Duration;

use insync_impl::protocol::{BrokerId, NodeId};
use insync_model::walk::SplitMix64;
use serde::Serialize;

/// The kinds of fault, as `--faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `SIGKILL`, then start again on the same data directory.
    Kill,
    /// `SIGSTOP` for longer than the session timeout, then `SIGCONT`.
    Pause,
    /// Links between nodes cut (stalled, as a partition does) or delayed, through the proxy.
    Partition,
    /// A graceful stop (`Shutdown`), then start again.
    Restart,
    /// The broker's data directory (a size-limited tmpfs) filled up, then freed.
    Disk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Restart,
        FaultKind::Disk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Restart => "restart",
            FaultKind::Disk => "disk",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let kind = FaultKind::ALL.into_iter().find(|kind| kind.name() == text);
        kind.ok_or_else(|| {
            format!("unknown fault {text:?}: kill, pause, partition, restart or disk")
        })
    }
}

/// A node as a step names it; resolved when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Subject {
    Node(NodeId),
    /// The broker the controller names as leader (broker 1 if it names none or cannot answer).
    Leader,
}

/// Who a partition cuts `side` from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Others {
    /// Every other node: `side` is isolated.
    All,
    /// Every other broker; the controller still reaches `side`.
    Brokers,
    One(Subject),
}

/// One fault, before its subjects are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    Kill(Subject),
    Pause(Subject),
    Restart(Subject),
    /// Fill a broker's data directory.
    Disk(Subject),
    /// `delay_ms: None` cuts the links both ways; `Some(ms)` delays every chunk by `ms`.
    Partition {
        side: Subject,
        from: Others,
        delay_ms: Option<u64>,
    },
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill(_) => FaultKind::Kill,
            Fault::Pause(_) => FaultKind::Pause,
            Fault::Restart(_) => FaultKind::Restart,
            Fault::Disk(_) => FaultKind::Disk,
            Fault::Partition { .. } => FaultKind::Partition,
        }
    }
}

/// One step of a schedule. A `Heal` names the `Inject` it undoes by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Step {
    Inject {
        id: u32,
        fault: Fault,
    },
    Heal {
        id: u32,
    },
    Wait(Duration),
    /// Until the controller's ISR is the leader alone (at most `within`; the run fails
    /// otherwise). Followers leave the ISR one `AlterPartition` at a time, each after its own
    /// lag window, so a fixed wait would have to guess how many windows.
    AwaitLeaderAlone {
        within: Duration,
    },
}

/// The clocks a schedule's durations are chosen against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleClocks {
    /// A pause lasts longer than this, so the controller fences the paused broker.
    pub session_timeout: Duration,
    /// A partition of the leader lasts long enough, sometimes, for the ISR to shrink.
    pub replica_lag_time_max: Duration,
}

/// The schedule's seeded generator: the model's walks' SplitMix64 (reproducibility, not
/// quality), with the ranges a schedule draws from.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    /// Uniform in `0..bound` (`bound > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        self.0.next_u64() % bound
    }

    /// Uniform in `low..=high` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        assert!(low <= high);
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

/// The seeded schedule: an endless sequence of inject, wait, heal, wait; the driver stops
/// taking steps when the run's duration is over (after a heal, so nothing stays broken).
#[derive(Clone, Debug)]
pub struct Schedule {
    rng: Rng,
    kinds: Vec<FaultKind>,
    brokers: u32,
    clocks: ScheduleClocks,
    /// Kinds still to cover once before drawing at random.
    first_round: Vec<FaultKind>,
    next_id: u32,
}

impl Schedule {
    pub fn new(seed: u64, kinds: &[FaultKind], brokers: u32, clocks: ScheduleClocks) -> Self {
        assert!(!kinds.is_empty(), "a schedule needs a fault kind");
        assert!(brokers >= 1);
        let mut rng = Rng::new(seed);
        let mut first_round: Vec<FaultKind> = kinds.to_vec();
        // A seeded shuffle (Fisher-Yates), popped from the back.
        for index in (1..first_round.len()).rev() {
            let other = rng.below(index as u64 + 1) as usize;
            first_round.swap(index, other);
        }
        Schedule {
            rng,
            kinds: kinds.to_vec(),
            brokers,
            clocks,
            first_round,
            next_id: 0,
        }
    }

    /// The next fault's four steps: inject, hold, heal, settle.
    pub fn next_round(&mut self) -> [Step; 4] {
        let kind = match self.first_round.pop() {
            Some(kind) => kind,
            None => self.kinds[self.rng.below(self.kinds.len() as u64) as usize],
        };
        let (fault, hold) = self.draw(kind);
        let id = self.next_id;
        self.next_id += 1;
        let settle = self.rng.millis(200, 1_000);
        [
            Step::Inject { id, fault },
            Step::Wait(hold),
            Step::Heal { id },
            Step::Wait(settle),
        ]
    }

    /// A fault of `kind` and how long it is held.
    fn draw(&mut self, kind: FaultKind) -> (Fault, Duration) {
        let session_ms = self.clocks.session_timeout.as_millis() as u64;
        let lag_ms = self.clocks.replica_lag_time_max.as_millis() as u64;
        match kind {
            FaultKind::Kill => (Fault::Kill(self.any_node()), self.rng.millis(100, 1_500)),
            FaultKind::Pause => {
                let hold = self.rng.millis(session_ms + 300, session_ms + 1_500);
                (Fault::Pause(self.broker()), hold)
            }
            FaultKind::Restart => (Fault::Restart(self.any_node()), self.rng.millis(0, 500)),
            FaultKind::Disk => (Fault::Disk(self.broker()), self.rng.millis(500, 2_000)),
            FaultKind::Partition => {
                let hold = self.rng.millis(500, lag_ms + 1_000);
                (self.partition(), hold)
            }
        }
    }

    fn partition(&mut self) -> Fault {
        let side = self.any_node();
        let from = match self.rng.below(3) {
            0 => Others::All,
            1 => Others::Brokers,
            _ => Others::One(self.any_node()),
        };
        let delay_ms = match self.rng.below(4) {
            0 => Some(self.rng.millis(5, 100).as_millis() as u64),
            _ => None,
        };
        Fault::Partition {
            side,
            from,
            delay_ms,
        }
    }

    /// The leader half of the time (the interesting target), else any broker.
    fn broker(&mut self) -> Subject {
        match self.rng.below(2) {
            0 => Subject::Leader,
            _ => {
                let id = 1 + self.rng.below(u64::from(self.brokers)) as BrokerId;
                Subject::Node(NodeId::Broker(id))
            }
        }
    }

    /// The controller one time in (brokers + 1), else a broker.
    fn any_node(&mut self) -> Subject {
        match self.rng.below(u64::from(self.brokers) + 1) {
            0 => Subject::Node(NodeId::Controller),
            _ => self.broker(),
        }
    }
}

/// The fixed plan `leader-crash`: cut the leader off from the other brokers (the controller
/// still reaches everyone) until the ISR has shrunk to the leader alone and, with
/// `--min-isr 1`, it has acknowledged records no one else holds; then crash it.
/// With `--unclean` the controller elects an out-of-sync broker, and the leader's
/// acknowledged records are truncated when it returns: the loss the model predicts.
pub fn leader_crash_plan(clocks: ScheduleClocks) -> Vec<Step> {
    let isolate = Fault::Partition {
        side: Subject::Leader,
        from: Others::Brokers,
        delay_ms: None,
    };
    let shrunk = 4 * clocks.replica_lag_time_max + Duration::from_secs(10);
    let elected = clocks.session_timeout + Duration::from_secs(2);
    vec![
        Step::Inject {
            id: 0,
            fault: isolate,
        },
        Step::AwaitLeaderAlone { within: shrunk },
        // The leader alone acknowledges records for a while (with --min-isr 1).
        Step::Wait(Duration::from_secs(2)),
        Step::Inject {
            id: 1,
            fault: Fault::Kill(Subject::Leader),
        },
        Step::Wait(elected),
        Step::Heal { id: 0 },
        Step::Wait(Duration::from_secs(1)),
        Step::Heal { id: 1 },
        Step::Wait(Duration::from_secs(1)),
    ]
}

/// The fixed plan `kill-every-leader`: kill the leader, wait until the controller has fenced
/// it and elected another, and again, until every broker has been killed (each one led when
/// it died, so it held every acknowledged record but maybe not on disk); then start them again,
/// in the order they died. The last one dies alone in the ISR, with the others out of the ISR
/// and the ELR, so once all have restarted after unclean shutdowns only the `kip-966` last
/// known leader can lead (docs/protocol.md §4.10).
pub fn kill_every_leader_plan(clocks: ScheduleClocks, brokers: u32) -> Vec<Step> {
    let elected = clocks.session_timeout + Duration::from_secs(2);
    let mut steps = Vec::new();
    for id in 0..brokers {
        steps.push(Step::Inject {
            id,
            fault: Fault::Kill(Subject::Leader),
        });
        steps.push(Step::Wait(elected));
    }
    for id in 0..brokers {
        steps.push(Step::Heal { id });
        steps.push(Step::Wait(Duration::from_secs(1)));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCKS: ScheduleClocks = ScheduleClocks {
        session_timeout: Duration::from_millis(1500),
        replica_lag_time_max: Duration::from_millis(3000),
    };

    fn faults(seed: u64, kinds: &[FaultKind], rounds: usize) -> Vec<(Fault, Duration)> {
        let mut schedule = Schedule::new(seed, kinds, 3, CLOCKS);
        (0..rounds)
            .map(|_| match schedule.next_round() {
                [Step::Inject { fault, .. }, Step::Wait(hold), Step::Heal { .. }, Step::Wait(_)] => {
                    (fault, hold)
                }
                other => panic!("not inject, wait, heal, wait: {other:?}"),
            })
            .collect()
    }

    /// Goal: a seed gives the same schedule every time, another seed another one.
    #[test]
    fn a_seed_reproduces_its_schedule() {
        let all = FaultKind::ALL;
        assert_eq!(faults(7, &all, 50), faults(7, &all, 50));
        assert_ne!(faults(7, &all, 50), faults(8, &all, 50));
    }

    /// Goal: the first rounds cover every enabled kind once, and only enabled kinds appear.
    #[test]
    fn the_first_round_covers_every_kind() {
        for seed in 0..20 {
            let first: Vec<FaultKind> = faults(seed, &FaultKind::ALL, 5)
                .iter()
                .map(|(fault, _)| fault.kind())
                .collect();
            let mut sorted = first.clone();
            sorted.sort();
            assert_eq!(sorted, FaultKind::ALL.to_vec(), "seed {seed}: {first:?}");
        }
        let only = [FaultKind::Kill, FaultKind::Pause];
        assert!(faults(3, &only, 100)
            .iter()
            .all(|(fault, _)| only.contains(&fault.kind())));
    }

    /// Goal: a pause outlasts the session timeout (the controller must suspect the broker),
    /// and pauses and disk faults name brokers only.
    #[test]
    fn pauses_outlast_the_session_and_name_brokers() {
        for (fault, hold) in faults(11, &FaultKind::ALL, 300) {
            let named = match fault {
                Fault::Pause(subject) => {
                    assert!(hold > CLOCKS.session_timeout, "{hold:?}");
                    subject
                }
                Fault::Disk(subject) => subject,
                _ => continue,
            };
            assert_ne!(named, Subject::Node(NodeId::Controller));
        }
    }

    /// Goal: `kill-every-leader` kills the leader once per broker, and heals every kill.
    #[test]
    fn kill_every_leader_kills_and_heals_each_broker_once() {
        let steps = kill_every_leader_plan(CLOCKS, 3);
        let kills: Vec<u32> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Inject {
                    id,
                    fault: Fault::Kill(Subject::Leader),
                } => Some(*id),
                _ => None,
            })
            .collect();
        let heals: Vec<u32> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Heal { id } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(kills, vec![0, 1, 2]);
        assert_eq!(heals, kills);
        let last_kill = steps.iter().rposition(|s| matches!(s, Step::Inject { .. }));
        let first_heal = steps.iter().position(|s| matches!(s, Step::Heal { .. }));
        assert!(
            last_kill < first_heal,
            "every broker is down before any restarts"
        );
    }

    #[test]
    fn fault_kinds_parse_by_name() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert!("flood".parse::<FaultKind>().is_err());
    }
}
