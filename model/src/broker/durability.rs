//! What a broker has saved: the durable end of its log and its HW checkpoint, and the
//! `Flush` and `HwCheckpoint` timers that move them (§2).

use super::{Broker, BrokerState, BrokerStorage};
use crate::config::Fsync;
use crate::types::{Offset, Record};

impl BrokerState {
    /// Removes the records at `offset` and after. Durable at once, and since the
    /// implementation fsyncs the whole file to make it so, what is left is durable too (§2).
    /// The HW is clamped to the new LEO in memory only: the checkpoint lags until
    /// `HwCheckpoint` fires.
    pub(super) fn truncate(&mut self, offset: Offset) {
        if offset < self.leo() {
            self.log.truncate(offset as usize);
            self.flushed = offset;
        }
        self.hw = self.hw.min(self.leo());
    }

    /// Whether `Flush` and whether `HwCheckpoint` should be armed (§2).
    pub fn durability_timers(&self) -> (bool, bool) {
        (self.flushed < self.leo(), self.hw_checkpoint != self.hw)
    }

    /// What a crash now would keep.
    pub fn storage(&self) -> BrokerStorage {
        BrokerStorage {
            log: self.log[..self.flushed as usize].to_vec(),
            hw: self.hw_checkpoint,
            broker_epoch: self.broker_epoch,
        }
    }

    /// `Flush`: the whole log is durable.
    pub(super) fn on_flush(&mut self) {
        self.flushed = self.leo();
    }

    /// `HwCheckpoint`: the HW in memory is saved.
    pub(super) fn on_hw_checkpoint(&mut self) {
        self.hw_checkpoint = self.hw;
    }
}

impl Broker {
    /// Ends a step: under `fsync = always` every append was made durable before anything
    /// was sent (§2).
    pub fn sync(&self, state: &mut BrokerState) {
        if self.cfg.fsync == Fsync::Always {
            state.flushed = state.leo();
        }
        assert!(state.flushed <= state.leo(), "durable end past the LEO");
    }

    /// What must be saved after a step that turned `before` into `after`: the durable log
    /// prefix or the HW checkpoint, when either changed.
    pub fn storage_update(
        &self,
        before: &BrokerState,
        after: &BrokerState,
    ) -> Option<BrokerStorage> {
        fn durable(s: &BrokerState) -> (&[Record], Offset) {
            (&s.log[..s.flushed as usize], s.hw_checkpoint)
        }
        (durable(before) != durable(after)).then(|| after.storage())
    }
}
