//! Named scenarios: for each historical variant, the smallest configuration in which the
//! checker rediscovers the bug that its successor KIP fixed, and the property that shows it.
//!
//! `insync check --scenario NAME` runs one; docs/counterexamples.md draws each one's shortest
//! counterexample (`cargo test -p insync-model --test counterexamples` keeps the drawings in
//! step with the model). Every scenario but `kip-101-flush-bug`, `kip-966-bug`,
//! `min-isr-1-loss` and `last-leader-loss` runs with `fsync = always`, so that a crash loses
//! nothing and the bug shown is the protocol's, not the disk's; those four are about what a
//! crash loses from a log that is flushed lazily. `min-isr-1-loss` and `acks-1-loss` are
//! settings, not bugs (min ISR 1, and acks=1); `last-leader-loss` is Kafka's own unclean
//! recovery, which KIP-966 elects without asking.

use crate::config::{Acks, Config, Fsync, Variant};

/// The scenarios whose shortest-counterexample search takes minutes of CPU on 2 cores
/// (`kip-320-bug`: 16.1 M states; `kip-279-bug`, at 3 brokers: about a minute alone, two under
/// a loaded test run). The tests that search every scenario's shortest path skip these in the
/// default run and search them in `#[ignore]`d tests, which the long CI step
/// (`INSYNC_CI_LONG=1`, `-- --ignored`) runs, so `.ci/run` stays inside its budget.
pub const LONG_SEARCHES: [&str; 2] = ["kip-320-bug", "kip-279-bug"];

/// Whether `name`'s shortest-path search is one of [`LONG_SEARCHES`].
pub fn is_long_search(name: &str) -> bool {
    LONG_SEARCHES.contains(&name)
}

/// One named configuration and the property its shortest counterexample violates.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// `kip-101-bug`: the bug KIP-101 fixed, shown in the variant before it.
    pub name: &'static str,
    /// The invariant violated.
    pub property: &'static str,
    pub config: Config,
    /// One line: what goes wrong.
    pub summary: &'static str,
}

/// Starts from `brokers` brokers with every budget at 0 and `fsync = always`.
fn base(variant: Variant, brokers: u8) -> Config {
    let mut cfg = Config::new(brokers).with_variant(variant);
    cfg.records = 1;
    cfg.crashes = 0;
    cfg.expiries = 0;
    cfg.isr_shrinks = 0;
    cfg.reads = 0;
    cfg.retries = 0;
    cfg.fsync = Fsync::Always;
    cfg
}

/// Every scenario, oldest bug first.
pub fn all() -> Vec<Scenario> {
    // KIP-101's first scenario: a follower restarts, truncates to its HW and is still in the
    // ISR (a fast restart) when the leader fails.
    let mut kip101 = base(Variant::HwTruncation, 2);
    kip101.crashes = 1;
    kip101.expiries = 1;
    // KIP-101's second scenario: a hard failure loses a broker's unflushed tail, it leads with
    // fewer records than the other broker, which keeps its own by truncating to its HW; new
    // records then land at offsets where the two logs hold different records. Three records:
    // the lost one, the one the new leader writes in its place, and one both logs take after.
    // Min ISR 1, Kafka's default then and the setting of the KIP's example (at min ISR 2 the
    // shortest divergence is another story: the leader itself restarts and is re-elected).
    let mut kip101_flush = base(Variant::HwTruncation, 2);
    kip101_flush.records = 3;
    kip101_flush.crashes = 1;
    kip101_flush.expiries = 1;
    kip101_flush.min_insync_replicas = 1;
    kip101_flush.fsync = Fsync::Lazy;
    let mut kip279 = base(Variant::Kip101, 3);
    kip279.expiries = 2;
    let mut kip320 = base(Variant::Kip279, 3);
    kip320.expiries = 2;
    kip320.rejoins = 1;
    // KIP-966's "last replica standing" at min ISR 2: with the record on both brokers the ISR
    // shrinks to the leader, which crashes with it unflushed, restarts empty and, as the last
    // ISR member, is elected again while the other broker still holds the record.
    let mut kip966 = base(Variant::Kip320, 2);
    kip966.crashes = 1;
    kip966.expiries = 1;
    kip966.fsync = Fsync::Lazy;
    kip966.min_insync_replicas = 2;
    let mut min_isr = base(Variant::Kip966, 2);
    min_isr.crashes = 1;
    min_isr.expiries = 1;
    min_isr.min_insync_replicas = 1;
    min_isr.fsync = Fsync::Lazy;
    // KIP-966 as Kafka ships it (§4.10): both brokers crash with the acknowledged record
    // unflushed, one after the other, so the ISR and the ELR end up empty and the last known
    // leader, restarted empty, is elected uncleanly.
    let mut last_leader = base(Variant::Kip966, 2);
    last_leader.crashes = 2;
    last_leader.fsync = Fsync::Lazy;
    // acks=1 in the current design, with nothing lost to disk: a clean failover suffices.
    let mut acks_one = base(Variant::Kip966, 2);
    acks_one.expiries = 1;
    acks_one.acks = Acks::One;
    vec![
        Scenario {
            name: "kip-101-bug",
            property: "no_acked_record_lost",
            config: kip101,
            summary: "a follower restarts and truncates to its stale HW, after its fetch \
                      counted toward the HW; still in the ISR, it is elected when the leader \
                      fails",
        },
        Scenario {
            name: "kip-101-flush-bug",
            property: "log_matching",
            config: kip101_flush,
            summary: "a follower crashes before flushing a committed record and is elected with \
                      fewer records; the old leader truncates to its HW, which covers the \
                      record, keeps it, and the logs diverge at that offset for good",
        },
        Scenario {
            name: "kip-279-bug",
            property: "leader_completeness",
            config: kip279,
            summary: "after two quick leader changes the one-shot epoch lookup answers for an \
                      epoch the new leader never had, and the follower keeps a divergent record",
        },
        Scenario {
            name: "kip-320-bug",
            property: "strong_isr",
            config: kip320,
            summary: "a fetch sent in an old leader epoch is served, unfenced, by the same \
                      broker leading again in a later epoch, and counts toward its HW",
        },
        Scenario {
            name: "kip-966-bug",
            property: "no_acked_record_lost",
            config: kip966,
            summary: "at min ISR 2 the ISR shrinks to the leader, which crashes with the \
                      acknowledged record unflushed, restarts empty and, as the last ISR member, \
                      is re-elected while the other broker holds the record",
        },
        Scenario {
            name: "min-isr-1-loss",
            property: "acked_record_durable",
            config: min_isr,
            summary: "with min_insync_replicas = 1 a leader alone in the ISR acknowledges a \
                      record and loses it in a crash; the partition goes offline",
        },
        Scenario {
            name: "last-leader-loss",
            property: "no_acked_record_lost",
            config: last_leader,
            summary: "both brokers crash with the acknowledged record unflushed; once both \
                      have registered again the ISR and the ELR are empty, and the last known \
                      leader, restarted without the record, is elected uncleanly",
        },
        Scenario {
            name: "acks-1-loss",
            property: "no_acks1_record_lost",
            config: acks_one,
            summary: "with acks=1 the leader acknowledges its own append; its session expires \
                      before the follower fetches, and the new leader never had the record",
        },
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// The scenario names, for `--help` and errors.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}
