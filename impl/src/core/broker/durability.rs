//! §2 Durability: the `Flush` and `HwCheckpoint` timers.
//!
//! Appends under `fsync = lazy` and HW changes are not made durable when they happen: the core
//! arms a timer for each, and firing it stages the write (`Write::Flush`,
//! `Write::CheckpointHighWatermark`); the runtime fires it (after `flush_interval`, or the 5 s HW
//! checkpoint interval; in stepped mode the harness fires it as the model does). What a crash
//! keeps is the log up to its durable end offset and the last written HW checkpoint.

use super::{BrokerCore, BrokerResult};
use crate::core::ReplicaRead;
use crate::protocol::Timer;

impl<L: ReplicaRead> BrokerCore<L> {
    /// `Flush` is armed while the log's durable end offset is below its end (which happens
    /// only under `fsync = lazy`: under `always` every append is followed by a `Flush` write
    /// in its own step);
    /// `HwCheckpoint` while the checkpoint differs from the HW. Recomputed after every input.
    pub(super) fn refresh_durability_timers(&mut self) {
        let log_end_offset = self.log().log_end_offset();
        let durable_end_offset = self.log().durable_end_offset();
        assert!(
            durable_end_offset <= log_end_offset,
            "durable end {durable_end_offset} past the log end {log_end_offset}"
        );
        let wanted = [
            (Timer::Flush, durable_end_offset < log_end_offset),
            (
                Timer::HwCheckpoint,
                self.log().high_watermark_checkpoint() != self.hw,
            ),
        ];
        for (timer, armed) in wanted {
            match armed {
                true => self.armed.insert(timer),
                false => self.armed.remove(&timer),
            };
        }
    }

    /// Firing `Flush`: make the log durable up to its end.
    pub(super) fn on_flush(&mut self) -> BrokerResult<(), L> {
        self.staged.flush(&self.storage);
        assert_eq!(
            self.log().durable_end_offset(),
            self.log().log_end_offset(),
            "a flush left part of the log volatile"
        );
        Ok(())
    }

    /// Firing `HwCheckpoint`: write the HW as it is now.
    pub(super) fn on_hw_checkpoint(&mut self) -> BrokerResult<(), L> {
        self.staged
            .checkpoint_high_watermark(&self.storage, self.hw);
        assert_eq!(self.log().high_watermark_checkpoint(), self.hw);
        Ok(())
    }
}
