//! Real-time entry points (docs/protocol.md §6). The model abstracts these away: in stepped
//! mode the runtime never calls them, so they may only do what a model rule could also have
//! done (re-send a request, answer a parked fetch with what it would get anyway).
//!
//! - `fetch_timeout`: a follower's request got no answer in time (a broken connection loses
//!   messages) or it stopped on a fencing answer: send the request again.
//! - `release_parked`: a parked fetch waited `fetch_max_wait`; answer it with what there is
//!   (usually no records), so the follower's connection sees traffic and its timer resets.
//! - `lag_candidates` and `LagCandidate::caught_up_count`: the leader's per-follower "last
//!   caught up" notion. `Lag(f)` is armed whenever f is behind the LEO, which under steady
//!   produce load is nearly always; Kafka's real rule is "f has not caught up to the LEO of
//!   an earlier fetch for `replica_lag_time_max`". The runtime keeps, per candidate, the
//!   instant `caught_up_count` last changed, and fires `Lag(f)` when that instant is older than
//!   `replica_lag_time_max` (or when the timer was armed longer ago, if that is later).
//! - `heartbeat`: what to send the controller each heartbeat interval.

use super::{BrokerCore, BrokerResult};
use crate::core::{Effects, ReplicaLog};
use crate::protocol::{BrokerId, FetchState, Message, Timer};

/// A follower whose `Lag` timer is armed, and how often it has caught up so far in this leader
/// epoch (fetched at or past the LEO the leader had when it last answered it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LagCandidate {
    pub follower: BrokerId,
    pub caught_up_count: u64,
}

impl<L: ReplicaLog> BrokerCore<L> {
    /// Follower: re-sends the current request. `Fetching` re-sends `Fetch`, `Truncating`
    /// re-sends `OffsetsForLeaderEpoch`, `Idle` with a leader (stopped by a fencing answer)
    /// retries the `Fetch`. Nothing when leader or without a leader.
    pub fn fetch_timeout(&mut self) -> Effects {
        let before = self.armed.clone();
        let leader = self.view.as_ref().and_then(|view| view.leader);
        match leader {
            Some(leader) if leader != self.id && self.leader.is_none() => match self.fetch_state {
                FetchState::Truncating => self.send_epoch_lookup(leader),
                FetchState::Fetching | FetchState::Idle => self.send_fetch(),
            },
            _ => {}
        }
        self.finish(before)
    }

    /// Leader: answers `follower`'s parked fetch now, with the records and HW there are.
    pub fn release_parked(&mut self, follower: BrokerId) -> BrokerResult<Effects, L> {
        let before = self.armed.clone();
        let parked = self
            .leader
            .as_mut()
            .and_then(|state| state.replicas.get_mut(&follower))
            .and_then(|replica| {
                let epoch = replica.parked_epoch.take()?;
                Some((
                    epoch,
                    replica
                        .fetch_offset
                        .expect("a parked fetch recorded progress"),
                ))
            });
        let result = match parked {
            Some((epoch, fetch_offset)) => self.send_records(follower, epoch, fetch_offset),
            None => Ok(()),
        };
        let effects = self.finish(before);
        result.map(|()| effects)
    }

    /// Followers whose `Lag` timer is armed, with their caught-up counts.
    pub fn lag_candidates(&self) -> Vec<LagCandidate> {
        let Some(state) = &self.leader else {
            return Vec::new();
        };
        self.armed
            .iter()
            .filter_map(|timer| match timer {
                Timer::Lag(follower) => Some(LagCandidate {
                    follower: *follower,
                    caught_up_count: state.replicas[follower].caught_up_count,
                }),
                Timer::Expire(_) | Timer::Heartbeat(_) | Timer::Flush | Timer::HwCheckpoint => None,
            })
            .collect()
    }

    /// The heartbeat to send the controller: it carries the installed view's
    /// `partition_epoch` (0 before the first view), so a controller that knows a newer view
    /// answers with it, and the broker epoch, so a fenced broker's heartbeat lets it back in
    /// (the controller's `Heartbeat(b)`) only for the incarnation the controller registered.
    /// Until its registration is answered a restarted broker re-sends `RegisterBroker`
    /// instead: a broken connection may have lost the first one, and nothing else would
    /// repeat it (the controller treats a repeated registration like the first).
    pub fn heartbeat(&self) -> Message {
        let broker_epoch = self.broker_epoch;
        if !self.registered {
            return Message::RegisterBroker { broker_epoch };
        }
        let partition_epoch = self.view.as_ref().map_or(0, |view| view.partition_epoch);
        Message::Heartbeat {
            partition_epoch,
            broker_epoch,
        }
    }
}
