//! §4.1 Broker: `LeaderAndIsr(v)` from the controller, and the two role changes it causes:
//! becoming leader and becoming follower.

use std::collections::BTreeMap;

use super::{BrokerCore, BrokerResult, LeaderState, Replica};
use crate::core::{ReplicaRead, Variant};
use crate::protocol::{
    BrokerId, ClientReply, FetchState, PeerId, PeerMessage, ProduceResult, Timer, View,
};

impl<L: ReplicaRead> BrokerCore<L> {
    /// §4.1 step 0: a restarted broker ignores every view until the controller answered its
    /// registration (KIP-903: a view elected before the controller knew of the restart may
    /// name it leader although it lost its unflushed log). Step 1: a view no newer than the
    /// installed one is stale and ignored.
    pub(super) fn on_leader_and_isr(&mut self, view: View) -> BrokerResult<(), L> {
        if !self.registered {
            return Ok(());
        }
        if let Some(installed) = &self.view {
            if installed.partition_epoch >= view.partition_epoch {
                return Ok(());
            }
        }
        self.install_view(view)
    }

    /// §4.1 steps 2 and 3 (also used for a newer view in an `AlterPartitionResponse`, §4.9,
    /// and for the initial view at first start).
    pub(super) fn install_view(&mut self, view: View) -> BrokerResult<(), L> {
        if view.leader == Some(self.id) {
            self.install_as_leader(view)
        } else {
            self.install_as_non_leader(view)
        }
    }

    /// §4.1 step 2. New leadership when the leader epoch changed or this broker was not
    /// leader: `leader_epoch_start_offset = LEO`, fresh progress for every other broker, and
    /// the produce requests still waiting from an earlier leadership are answered `NotLeader`
    /// (as the model does: they belong to a leader epoch that is over).
    fn install_as_leader(&mut self, view: View) -> BrokerResult<(), L> {
        let new_leadership = match (&self.leader, &self.view) {
            (Some(_), Some(installed)) => installed.leader_epoch != view.leader_epoch,
            _ => true,
        };
        if new_leadership {
            let hw = self.hw;
            let replicas: BTreeMap<BrokerId, Replica> = self
                .config
                .brokers
                .iter()
                .filter(|id| **id != self.id)
                .map(|id| (*id, Replica::fresh(hw)))
                .collect();
            self.resign_leadership();
            self.leader = Some(LeaderState {
                leader_epoch_start_offset: self.log().log_end_offset(),
                replicas,
                pending_isr: None,
                waiting: Default::default(),
            });
        }
        self.fetch_state = FetchState::Idle;
        self.view = Some(view);
        self.maybe_advance_high_watermark()
    }

    /// §4.1 step 3: another leader, or none. A first view or a new leader makes the broker
    /// become follower; so does a new leader epoch of the same leader from Kafka 2.1 on
    /// (`refollows_on_new_epoch`); before, the follower only resumes.
    fn install_as_non_leader(&mut self, view: View) -> BrokerResult<(), L> {
        self.resign_leadership();
        let (new_leader, new_epoch) = match &self.view {
            None => (true, false),
            Some(installed) => (
                installed.leader != view.leader,
                installed.leader_epoch != view.leader_epoch,
            ),
        };
        self.view = Some(view);
        if new_leader || (new_epoch && self.config.variant.refollows_on_new_epoch()) {
            self.become_follower()?;
        } else if new_epoch {
            self.resume_following();
        }
        Ok(())
    }

    /// §4.1 step 3, before Kafka 2.1: a new epoch of the same leader. No truncation; the
    /// follower sends, at the new epoch, a `Fetch` if it was fetching, else (`kip-101`,
    /// `kip-279`, non-empty log) the epoch lookup again: an error may have cut the last one
    /// short, and Kafka's fetcher retried it. The answer to a fetch this replaces echoes the
    /// old epoch and is ignored (§4.3).
    fn resume_following(&mut self) {
        let Some(leader) = self.installed_view().leader else {
            return;
        };
        let lookup = self.config.variant.uses_epoch_lookup() && self.log().log_end_offset() > 0;
        if lookup && self.fetch_state != FetchState::Fetching {
            self.send_epoch_lookup(leader);
        } else {
            self.send_fetch();
        }
    }

    /// A leader that loses leadership answers every waiting produce with `NotLeader`, in the
    /// order they arrived, and drops its leader state (parked fetches go unanswered: their
    /// followers are about to learn the new view).
    fn resign_leadership(&mut self) {
        let Some(state) = self.leader.take() else {
            return;
        };
        for waiting in state.waiting {
            self.reply(
                waiting.client,
                ClientReply::ProduceResponse {
                    producer_id: waiting.record_id.producer_id,
                    first_sequence: waiting.record_id.sequence,
                    result: ProduceResult::NotLeader,
                },
            );
        }
    }

    /// Becomes follower of the installed view's leader, if it has one, by the variant's rule.
    fn become_follower(&mut self) -> BrokerResult<(), L> {
        let Some(leader) = self.installed_view().leader else {
            self.fetch_state = FetchState::Idle;
            return Ok(());
        };
        match self.config.variant {
            Variant::HwTruncation => {
                self.truncate_log(self.hw)?;
                self.send_fetch();
            }
            Variant::Kip101 | Variant::Kip279 => {
                if self.log().log_end_offset() == 0 {
                    self.send_fetch();
                } else {
                    self.send_epoch_lookup(leader);
                }
            }
            Variant::Kip320 | Variant::Kip966 => self.send_fetch(),
        }
        Ok(())
    }

    /// Sends `Fetch { leader_epoch: v.leader_epoch, fetch_offset: LEO, last_fetched_epoch,
    /// broker_epoch }` to the installed view's leader and enters `Fetching`; `FetchRetry`'s
    /// clock starts (§4.12).
    pub(super) fn send_fetch(&mut self) {
        let view = self.installed_view();
        let leader = view.leader.expect("a follower fetches only from a leader");
        assert_ne!(leader, self.id, "a leader does not fetch from itself");
        let message = PeerMessage::Fetch {
            leader_epoch: view.leader_epoch,
            fetch_offset: self.log().log_end_offset(),
            last_fetched_epoch: self.log().last_epoch(),
            broker_epoch: self.broker_epoch,
        };
        self.fetch_state = FetchState::Fetching;
        self.send(PeerId::Broker(leader), message);
        self.restart(Timer::FetchRetry);
    }

    /// §4.1, `kip-101`/`kip-279`: ask the leader where our last epoch ends.
    pub(super) fn send_epoch_lookup(&mut self, leader: BrokerId) {
        let requested_epoch = self.log().last_epoch();
        self.fetch_state = FetchState::Truncating;
        self.send(
            PeerId::Broker(leader),
            PeerMessage::OffsetsForLeaderEpoch { requested_epoch },
        );
        self.restart(Timer::FetchRetry);
    }
}

impl Replica {
    fn fresh(hw: crate::protocol::Offset) -> Self {
        Replica {
            fetch_offset: None,
            hw_sent: hw,
            parked_epoch: None,
            broker_epoch: 0,
            end_offset_sent: 0,
        }
    }
}
