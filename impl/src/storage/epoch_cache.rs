//! [`EpochCache`]: the leader-epoch cache, epoch -> first offset of that epoch in this log.
//!
//! The cache answers "where does epoch e end in my log?", which is how a follower finds the
//! point where its log diverges from the leader's (KIP-101, KIP-279) without comparing
//! records. Its operations follow Kafka's `LeaderEpochFileCache`:
//!
//! - [`assign`](EpochCache::assign)`(epoch, start)` records that `epoch` starts at `start`.
//!   Continuing the latest epoch is a no-op. Otherwise the new entry wins: every entry with an
//!   epoch >= `epoch` or a start >= `start` is removed first, so entries stay strictly
//!   increasing in both epoch and start offset, whatever order callers assign in.
//! - [`end_offset_for`](EpochCache::end_offset_for)`(epoch, log_end_offset)` is the
//!   OffsetsForLeaderEpoch answer: the largest epoch <= `epoch` and where it ends.
//! - [`truncate_from_end`](EpochCache::truncate_from_end)`(end)` drops the entries starting
//!   at or after `end`, when the log is truncated to `end`.
//!
//! Invariant kept by the `Storage` facade: the cache holds exactly the epochs of the records
//! (docs/protocol.md: "the epoch cache is derived from the records"): every entry covers at
//! least one record, and records in `[start_i, start_i+1)` carry epoch `i`. A leader's own
//! epoch before its first append is not an entry; the core keeps its
//! `leader_epoch_start_offset`. So recovery can check the checkpoint against the records, or
//! rebuild it from them.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// One cache entry: `epoch` begins at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// The leader-epoch cache. See the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    /// epoch -> start offset, strictly increasing in both.
    starts: BTreeMap<u32, u64>,
}

impl EpochCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a cache from persisted entries, checking they are strictly increasing in both
    /// epoch and start offset; `Err` describes the first violation.
    pub fn from_entries(entries: &[EpochEntry]) -> Result<Self, String> {
        let mut cache = EpochCache::new();
        for pair in entries.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if later.epoch <= earlier.epoch || later.start_offset <= earlier.start_offset {
                return Err(format!("entry {later:?} does not follow {earlier:?}"));
            }
        }
        for entry in entries {
            cache.starts.insert(entry.epoch, entry.start_offset);
        }
        Ok(cache)
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> Vec<EpochEntry> {
        self.starts
            .iter()
            .map(|(&epoch, &start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.starts
            .last_key_value()
            .map(|(&epoch, &start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
    }

    /// The newest epoch (Kafka's `latestEpoch`, what a follower sends as its last fetched
    /// epoch).
    pub fn latest_epoch(&self) -> Option<u32> {
        self.latest().map(|entry| entry.epoch)
    }

    /// Where `epoch` starts, if the cache has it.
    pub fn start_offset_of(&self, epoch: u32) -> Option<u64> {
        self.starts.get(&epoch).copied()
    }

    /// The epoch of the record at `offset`: the newest entry starting at or before it. The
    /// caller checks `offset` is below the log end.
    pub fn epoch_for_offset(&self, offset: u64) -> Option<u32> {
        self.starts
            .iter()
            .rev()
            .find(|(_, &start)| start <= offset)
            .map(|(&epoch, _)| epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the cache changed (and
    /// so must be checkpointed).
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> bool {
        if let Some(latest) = self.latest() {
            if latest.epoch == epoch && latest.start_offset <= start_offset {
                return false;
            }
        }
        self.starts
            .retain(|&kept_epoch, &mut kept_start| kept_epoch < epoch && kept_start < start_offset);
        self.starts.insert(epoch, start_offset);
        self.assert_monotonic();
        true
    }

    /// OffsetsForLeaderEpoch as docs/protocol.md states it: the largest epoch in the cache
    /// that is <= `requested`, and the offset where it ends in this log (the start of the next
    /// epoch, or `log_end_offset` for the latest). `None` when no epoch <= `requested` exists
    /// (an empty log, or `requested` older than the first epoch).
    ///
    /// Unlike Kafka, whose leader cache always holds its own current epoch, this cache holds
    /// only the epochs of records (the leader keeps `leader_epoch_start_offset` itself), so a
    /// `requested` epoch newer than every record's answers `(latest, log_end_offset)`, which is
    /// what Kafka's leader answers in that case through its current-epoch entry.
    pub fn end_offset_for(&self, requested: u32, log_end_offset: u64) -> Option<(u32, u64)> {
        if let Some(latest) = self.latest() {
            assert!(
                latest.start_offset <= log_end_offset,
                "epoch cache starts past the log end"
            );
        }
        let (&floor_epoch, _) = self.starts.range(..=requested).next_back()?;
        let after = (Bound::Excluded(floor_epoch), Bound::Unbounded);
        match self.starts.range(after).next() {
            Some((_, &next_start)) => Some((floor_epoch, next_start)),
            None => Some((floor_epoch, log_end_offset)),
        }
    }

    /// Drops the entries that start at or after `end_offset` (the log was truncated there).
    /// Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let before = self.starts.len();
        self.starts.retain(|_, &mut start| start < end_offset);
        self.starts.len() != before
    }

    fn assert_monotonic(&self) {
        let mut previous: Option<u64> = None;
        for &start in self.starts.values() {
            assert!(
                previous.is_none_or(|earlier| earlier < start),
                "epoch cache out of order"
            );
            previous = Some(start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> EpochCache {
        let entries: Vec<EpochEntry> = entries
            .iter()
            .map(|&(epoch, start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect();
        EpochCache::from_entries(&entries).unwrap()
    }

    #[test]
    fn end_offset_for_is_floor_epoch_and_next_start() {
        // Epochs 1 at 0, 3 at 5, 6 at 9; the log ends at 12.
        let cache = cache(&[(1, 0), (3, 5), (6, 9)]);
        assert_eq!(
            cache.end_offset_for(6, 12),
            Some((6, 12)),
            "latest ends at the LEO"
        );
        assert_eq!(
            cache.end_offset_for(3, 12),
            Some((3, 9)),
            "known epoch ends at next start"
        );
        assert_eq!(
            cache.end_offset_for(4, 12),
            Some((3, 9)),
            "gap: floor epoch 3"
        );
        assert_eq!(cache.end_offset_for(5, 12), Some((3, 9)));
        assert_eq!(cache.end_offset_for(1, 12), Some((1, 5)));
        assert_eq!(
            cache.end_offset_for(9, 12),
            Some((6, 12)),
            "newer: latest, ends at LEO"
        );
        assert_eq!(EpochCache::new().end_offset_for(1, 0), None, "empty cache");
    }

    #[test]
    fn below_the_first_epoch_has_no_answer() {
        let cache = cache(&[(4, 3), (5, 7)]);
        assert_eq!(cache.end_offset_for(3, 9), None);
        assert_eq!(cache.end_offset_for(0, 9), None);
        assert_eq!(cache.end_offset_for(4, 9), Some((4, 7)));
    }

    #[test]
    fn assign_continuing_epoch_is_a_no_op() {
        let mut cache = cache(&[(1, 0), (2, 4)]);
        assert!(!cache.assign(2, 6));
        assert!(cache.assign(3, 8));
        assert_eq!(
            cache.entries().last(),
            Some(&EpochEntry {
                epoch: 3,
                start_offset: 8
            })
        );
    }

    #[test]
    fn assign_supersedes_conflicting_entries() {
        // A newer epoch at the same start replaces the entry there.
        let mut cache = cache(&[(1, 0), (5, 10)]);
        assert!(cache.assign(6, 10));
        assert_eq!(cache, self::cache(&[(1, 0), (6, 10)]));
        // An older epoch removes every entry at or above it (Kafka's non-monotonic rule).
        let mut cache = self::cache(&[(1, 0), (5, 10)]);
        assert!(cache.assign(4, 10));
        assert_eq!(cache, self::cache(&[(1, 0), (4, 10)]));
    }

    #[test]
    fn truncate_from_end_drops_entries_at_or_after() {
        let mut cache = cache(&[(1, 0), (3, 5), (6, 9)]);
        assert!(!cache.truncate_from_end(10));
        assert!(cache.truncate_from_end(9));
        assert_eq!(cache.latest_epoch(), Some(3));
        assert!(cache.truncate_from_end(0));
        assert!(cache.is_empty());
    }

    #[test]
    fn epoch_for_offset_and_start_offset_of() {
        let cache = cache(&[(1, 0), (3, 5)]);
        assert_eq!(cache.epoch_for_offset(4), Some(1));
        assert_eq!(cache.epoch_for_offset(5), Some(3));
        assert_eq!(cache.start_offset_of(3), Some(5));
        assert_eq!(cache.start_offset_of(2), None);
    }

    #[test]
    fn from_entries_rejects_non_monotonic() {
        let entries = [
            EpochEntry {
                epoch: 2,
                start_offset: 5,
            },
            EpochEntry {
                epoch: 3,
                start_offset: 5,
            },
        ];
        assert!(EpochCache::from_entries(&entries).is_err());
    }
}
