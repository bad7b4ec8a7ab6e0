//! Configuration of one model: protocol variant, switches and the bounds of the search.
//!
//! Every fault is a budget here (docs/protocol.md §5 names the variants and switches). The
//! bounds are chosen so that the default check, 3 brokers and `kip-966`, reaches a fixed point
//! in under a minute on a 2-core machine; see docs/performance.md.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Which historical design of Kafka's replication the brokers and controller follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Current design (Kafka 3.7+, KRaft): fetch fencing, divergence from the leader, HW waits
    /// for `min_insync_replicas`, eligible leader replicas (KIP-966).
    Kip966,
    /// Kafka 2.2–3.x under ZooKeeper: KIP-320's fetch fencing and divergence detection by the
    /// leader, no ELR.
    Kip320,
    /// Kafka 2.0.0: KIP-279's epoch lookup with the common-prefix rule, no fencing.
    Kip279,
    /// Kafka 0.11.0–1.1.1: KIP-101's epoch lookup returning the end of the requested epoch.
    Kip101,
    /// Kafka 0.8.2–0.10.2, before KIP-101: a new follower truncates to its own high watermark.
    HwTruncation,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Kip966,
        Variant::Kip320,
        Variant::Kip279,
        Variant::Kip101,
        Variant::HwTruncation,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Variant::Kip966 => "kip-966",
            Variant::Kip320 => "kip-320",
            Variant::Kip279 => "kip-279",
            Variant::Kip101 => "kip-101",
            Variant::HwTruncation => "hw-truncation",
        }
    }
    /// Fetch requests carry a fenced leader epoch and the leader detects divergence.
    pub fn fences_fetch(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }
    /// A new follower looks up the leader's epoch end before fetching.
    pub fn epoch_lookup(self) -> bool {
        matches!(self, Variant::Kip101 | Variant::Kip279)
    }
    /// KAFKA-7128 (Kafka 2.0.1, 2.1): a follower joins the ISR only once it has fetched up to
    /// the start offset of the leader's epoch, not merely up to the leader's (lagging) HW.
    pub fn isr_join_needs_epoch_start(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }
    /// The ZooKeeper-era controller bumped the leader epoch whenever it changed the ISR itself,
    /// even with the leader unchanged; KRaft stopped in 3.6 (KAFKA-15021).
    pub fn controller_isr_change_bumps_epoch(self) -> bool {
        !matches!(self, Variant::Kip966)
    }
    /// From Kafka 2.1 a follower becomes follower again (truncation rule and all) on a new
    /// leader epoch of the same leader; before, only a new leader broker made it do so.
    pub fn refollows_on_new_epoch(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }
    /// The controller notices a restart at registration and takes the broker out of the ISR
    /// (KRaft; ZooKeeper since Kafka 2.2, KIP-380). Before, a broker back within its session
    /// timeout kept its ISR place: a fast restart.
    pub fn restart_leaves_isr(self) -> bool {
        matches!(self, Variant::Kip966 | Variant::Kip320)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                format!("unknown variant '{s}': expected one of kip-966, kip-320, kip-279, kip-101, hw-truncation")
            })
    }
}

/// When a produce is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Acks {
    /// Once committed (below the HW).
    #[serde(rename = "all")]
    All,
    /// Once appended by the leader.
    #[serde(rename = "1")]
    One,
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::All => "all",
            Acks::One => "1",
        })
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::One),
            _ => Err(format!("unknown acks '{s}': expected all or 1")),
        }
    }
}

/// When appends become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// Kafka's default: appends are never made durable by the protocol; a crash loses them.
    Lazy,
    /// Every append is durable before anything is sent.
    Always,
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Lazy => "lazy",
            Fsync::Always => "always",
        })
    }
}

impl FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lazy" => Ok(Fsync::Lazy),
            "always" => Ok(Fsync::Always),
            _ => Err(format!("unknown fsync '{s}': expected lazy or always")),
        }
    }
}

/// Everything that defines one model instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Config {
    pub variant: Variant,
    /// Number of brokers N (ids 1..=N).
    pub brokers: u8,
    /// Records the client produces (ids 1..=R).
    pub records: u8,
    /// Total broker crashes (each followed by a possible restart).
    pub crashes: u8,
    /// Total controller-side session expiries.
    pub expiries: u8,
    /// Total `Lag` timer firings (ISR shrink proposals). Expansions need no budget of their own:
    /// each one re-adds a broker that a shrink, expiry or restart removed.
    pub isr_shrinks: u8,
    /// Total `Consume` requests the client sends.
    pub reads: u8,
    /// Total `Heartbeat(b)` firings: a fenced broker that was never down comes back without
    /// restarting (an expiry that was a false suspicion, undone). Off (0) by default.
    pub rejoins: u8,
    /// Total firings of the timers that end a wait (§4.12): a follower's `FetchRetry` and
    /// `FetchBackoff`, a leader's `ParkedRelease(f)`. Each can put a second request or an
    /// empty answer in flight.
    pub retries: u8,
    /// States whose controller leader epoch exceeds this are outside the search.
    pub max_epoch: u8,
    pub unclean_leader_election: bool,
    pub acks: Acks,
    pub min_insync_replicas: u8,
    pub fsync: Fsync,
}

impl Config {
    /// The default configuration for `brokers` brokers (the one `insync check` runs for 3).
    pub fn new(brokers: u8) -> Self {
        Config {
            variant: Variant::Kip966,
            brokers,
            records: 1,
            crashes: 1,
            expiries: 1,
            // One leader-driven ISR shrink (a `Lag` firing) at every size: the "I" of ISR.
            // At 3 brokers it multiplies the space by more than 7, and a read by about 3, so
            // the 3-broker default spends its budget on the shrink and reads nothing; reads
            // are checked by the 2-broker default and, at 3 brokers, in the long CI step
            // (docs/performance.md, "The default check with an ISR shrink").
            isr_shrinks: 1,
            reads: if brokers >= 3 { 0 } else { 1 },
            rejoins: 0,
            // One firing multiplies the 2-broker space by about 5 (docs/performance.md); the
            // 3-broker default stays within a minute without it, and `--retries 1` checks it.
            retries: if brokers >= 3 { 0 } else { 1 },
            max_epoch: 4,
            unclean_leader_election: false,
            acks: Acks::All,
            min_insync_replicas: Self::default_min_isr(brokers),
            fsync: Fsync::Lazy,
        }
    }

    /// 2 whenever there are two or more brokers, 1 for a single broker. Kafka's advice: never
    /// acknowledge `acks=all` with one copy. With 2 brokers, min ISR 1 lets a leader alone in
    /// the ISR acknowledge a record that a crash under lazy fsync then loses
    /// (`acked_record_durable`; the `min-isr-1-loss` scenario keeps that setting explicit);
    /// 2 of 2 blocks commits while either broker is out, which is the price of durability.
    pub fn default_min_isr(brokers: u8) -> u8 {
        if brokers >= 2 {
            2
        } else {
            1
        }
    }

    pub fn with_variant(mut self, variant: Variant) -> Self {
        self.variant = variant;
        self
    }

    /// Client actor index.
    pub fn client_index(&self) -> usize {
        self.brokers as usize + 1
    }

    /// Checks the bounds the model's `u8` arithmetic and bitmasks rely on.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=7).contains(&self.brokers) {
            return Err("--brokers must be between 1 and 7".into());
        }
        if !(1..=7).contains(&self.records) {
            return Err("--records must be between 1 and 7".into());
        }
        if self.min_insync_replicas < 1 || self.min_insync_replicas > self.brokers {
            return Err(format!(
                "--min-isr must be between 1 and the number of brokers ({})",
                self.brokers
            ));
        }
        if self.max_epoch < 1 || self.max_epoch > 100 {
            return Err("--max-epoch must be between 1 and 100".into());
        }
        if self.crashes > 20
            || self.expiries > 20
            || self.isr_shrinks > 20
            || self.reads > 20
            || self.rejoins > 20
            || self.retries > 20
        {
            return Err("fault and read budgets must be at most 20".into());
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variant={} brokers={} records={} crashes={} expiries={} isr-shrinks={} reads={} \
             rejoins={} retries={} max-epoch={} unclean={} acks={} min-isr={} fsync={}",
            self.variant,
            self.brokers,
            self.records,
            self.crashes,
            self.expiries,
            self.isr_shrinks,
            self.reads,
            self.rejoins,
            self.retries,
            self.max_epoch,
            self.unclean_leader_election,
            self.acks,
            self.min_insync_replicas,
            self.fsync
        )
    }
}
