//! Incarnations the logs do not show: a broker killed after it took its broker epoch and
//! before its `Start` reached the trace log. Such an incarnation sent nothing, since a node
//! performs nothing of its start before the `Start` record is written (`trace_log::writer`);
//! all it can have done is what the model's start does to storage: take the next broker
//! epoch, make its recovered log durable and clamp the HW checkpoint. So each is explained as
//! the model's start followed at once by a crash, and the verdict says how many there were.
//! Their sends (a registration, the initial fetches) stay undelivered, which the model's
//! network allows. D9 in conformance/DIVERGENCES.md has the run that needed this.

use insync_impl::protocol::BrokerEpoch;
use insync_model::actor::{State, Storage};
use insync_model::broker::BrokerStorage;
use stateright::actor::{Actor, Id, Out};

use super::{ModelRun, Outcome};

impl ModelRun {
    /// What the recorded start of a broker whose broker epoch is `recorded` restarts from:
    /// `storage` (the model's durable state after its last recorded incarnation, `None` if
    /// none was recorded) carried through the unrecorded incarnations between the two.
    /// `Ok(None)`: the recorded start is the broker's first, from an empty data directory.
    pub(super) fn through_unrecorded_starts(
        &mut self,
        actor: Id,
        name: &str,
        storage: Option<BrokerStorage>,
        recorded: BrokerEpoch,
    ) -> Result<Option<BrokerStorage>, Outcome> {
        let recorded = u8::try_from(recorded).map_err(|_| {
            Outcome::OutOfScope(format!(
                "{name}: broker epoch {recorded}, past the model's bound of {}",
                u8::MAX
            ))
        })?;
        let (mut storage, mut unrecorded) = match storage {
            Some(storage) => (storage, 0u32),
            None if recorded == 0 => return Ok(None),
            // The first incarnation left no record: the model's first start, then a crash.
            None => (self.started_and_crashed(actor, None)?, 1),
        };
        // Bounded: each round moves the epoch one up, toward `recorded`.
        while storage.broker_epoch.saturating_add(1) < recorded {
            storage = self.started_and_crashed(actor, Some(storage))?;
            unrecorded += 1;
        }
        if unrecorded > 0 {
            self.notes.push(format!(
                "{name}: {unrecorded} incarnation(s) before broker epoch {recorded} left no \
                 record (killed before their start was recorded); taken as starts that \
                 crashed at once, having sent nothing"
            ));
        }
        Ok(Some(storage))
    }

    /// The model's start of `actor` from `storage`, and the durable state a crash right after
    /// it leaves.
    fn started_and_crashed(
        &self,
        actor: Id,
        storage: Option<BrokerStorage>,
    ) -> Result<BrokerStorage, Outcome> {
        let model = &self.actors[usize::from(actor)];
        let mut unsent = Out::new();
        match model.on_start(actor, &storage.map(Storage::Broker), &mut unsent) {
            State::Broker(state) => Ok(state.storage()),
            _ => Err(Outcome::Refused(vec![format!(
                "actor {} is not a broker",
                usize::from(actor)
            )])),
        }
    }
}
