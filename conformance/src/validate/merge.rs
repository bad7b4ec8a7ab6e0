//! One order of all nodes' events that keeps each node's own order and puts every receive
//! after the send it names (validation-notes: a topological sort is complete for "is this a
//! behaviour", since each step changes one actor).
//!
//! Which send a receive names: the channel `(sender, receiver)` is FIFO, so the k-th message
//! the receiver got from the sender is the earliest message sent on that channel, after the
//! one the (k-1)-th receive named, that is equal to it. Sends skipped over were lost (a broken
//! connection, a full queue, a node down). Earliest is safe: equal messages are
//! interchangeable for the receiver's step, and naming the earliest never names a send later
//! than the real one, so it cannot create a cycle the real run did not have. Clients are the
//! environment: what they send is not in any log, so their messages name no send.
//!
//! A SIGKILL loses the records still queued for the node's trace writer (`trace_log::writer`),
//! and the messages of those inputs may have left already. So a receive that names no send is
//! taken as a send of the unrecorded tail of one of the sender's incarnations that ended in a
//! crash, when there is one at or after the send the channel named last; the receive is then
//! still checked at the receiver, the send is not, and the verdict says so. Without such an
//! incarnation the receive is unexplained.

use std::collections::BTreeMap;

use insync_impl::protocol::NodeId;
use insync_impl::trace_log::{Input, TracedMessage};

use super::read::NodeLog;

/// An event's place: (node log position, event index in it).
pub type At = (usize, usize);

/// The merged order, and for every receive, the send it names.
#[derive(Debug)]
pub struct Merged {
    pub order: Vec<At>,
    /// Receives taken as sends of a crashed incarnation's unrecorded tail (module doc).
    pub from_unrecorded_tails: Vec<At>,
}

/// Why no order exists.
#[derive(Debug)]
pub enum MergeError {
    /// A receive no send in the sender's log can explain.
    Unsent { at: At, from: NodeId },
    /// The send→receive edges and the nodes' orders form a cycle (cannot happen with a real
    /// run: see the module doc).
    Cycle { stuck: Vec<At> },
}

/// Sends on one channel, in the sender's order: where each is and what it carried.
type Sends<'a> = Vec<(At, &'a TracedMessage)>;

fn sends_by_channel(logs: &[NodeLog]) -> BTreeMap<(NodeId, NodeId), Sends<'_>> {
    let mut channels: BTreeMap<(NodeId, NodeId), Sends<'_>> = BTreeMap::new();
    for (n, log) in logs.iter().enumerate() {
        for (e, event) in log.events.iter().enumerate() {
            for (target, _, message) in &event.sent {
                let channel = channels.entry((log.node, *target)).or_default();
                channel.push(((n, e), message));
            }
        }
    }
    channels
}

/// Where each incarnation of a log ends (its last event), and whether it ended in a crash (no
/// `Stop`), or may otherwise lack records (a gap, the bound, a torn tail at the end).
fn crashed_ends(log: &NodeLog) -> Vec<usize> {
    let mut ends = Vec::new();
    for (e, event) in log.events.iter().enumerate() {
        let last = e + 1 == log.events.len();
        let next_starts = matches!(
            log.events.get(e + 1).map(|n| &n.input),
            Some(Input::Start(_))
        );
        let incomplete = matches!(event.input, Input::Gap { .. } | Input::Full { .. });
        let crashed = (next_starts || last) && !matches!(event.input, Input::Stop);
        if crashed || incomplete {
            ends.push(e);
        }
    }
    if log.torn.is_some() && !ends.contains(&(log.events.len().saturating_sub(1))) {
        ends.push(log.events.len().saturating_sub(1));
    }
    ends
}

/// The send each receive names (`None` for a client's message), and the receives taken as
/// sends of unrecorded tails.
fn name_sends(logs: &[NodeLog]) -> Result<(BTreeMap<At, At>, Vec<At>), MergeError> {
    let channels = sends_by_channel(logs);
    let crashed: BTreeMap<NodeId, Vec<usize>> =
        logs.iter().map(|l| (l.node, crashed_ends(l))).collect();
    let mut cursors: BTreeMap<(NodeId, NodeId), usize> = BTreeMap::new();
    let mut last_named: BTreeMap<(NodeId, NodeId), usize> = BTreeMap::new();
    let mut named = BTreeMap::new();
    let mut unrecorded = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        for (e, event) in log.events.iter().enumerate() {
            let Input::Message { from, message, .. } = &event.input else {
                continue;
            };
            if matches!(from, NodeId::Client(_)) {
                continue;
            }
            let key = (*from, log.node);
            let sends = channels.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let cursor = cursors.entry(key).or_insert(0);
            let found = sends[*cursor..]
                .iter()
                .position(|(_, sent)| *sent == message);
            let Some(offset) = found else {
                let after = last_named.get(&key).copied().unwrap_or(0);
                let tail = crashed
                    .get(from)
                    .is_some_and(|ends| ends.iter().any(|end| *end >= after));
                if !tail {
                    return Err(MergeError::Unsent {
                        at: (n, e),
                        from: *from,
                    });
                }
                unrecorded.push((n, e));
                continue;
            };
            let send = sends[*cursor + offset].0;
            named.insert((n, e), send);
            last_named.insert(key, send.1);
            *cursor += offset + 1;
        }
    }
    Ok((named, unrecorded))
}

/// Kahn's algorithm over the nodes' cursors: take the lowest node whose next event's send
/// (if any) is already placed. Each round places one event, so it ends after all of them.
pub fn merge(logs: &[NodeLog]) -> Result<Merged, MergeError> {
    let (named, from_unrecorded_tails) = name_sends(logs)?;
    let mut next = vec![0usize; logs.len()];
    let total: usize = logs.iter().map(|l| l.events.len()).sum();
    let mut placed = vec![Vec::new(); logs.len()];
    let mut order = Vec::with_capacity(total);
    let is_placed = |placed: &Vec<Vec<bool>>, (n, e): At| placed[n].get(e).copied() == Some(true);
    for (n, log) in logs.iter().enumerate() {
        placed[n] = vec![false; log.events.len()];
    }
    while order.len() < total {
        let ready = (0..logs.len()).find(|&n| {
            next[n] < logs[n].events.len()
                && named
                    .get(&(n, next[n]))
                    .is_none_or(|send| is_placed(&placed, *send))
        });
        let Some(n) = ready else {
            let stuck = (0..logs.len())
                .filter(|&n| next[n] < logs[n].events.len())
                .map(|n| (n, next[n]))
                .collect();
            return Err(MergeError::Cycle { stuck });
        };
        placed[n][next[n]] = true;
        order.push((n, next[n]));
        next[n] += 1;
    }
    Ok(Merged {
        order,
        from_unrecorded_tails,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_impl::core::{ProtocolConfig, Variant};
    use insync_impl::trace_log::{Event, TraceHeader};

    fn start(node: NodeId) -> Input {
        Input::Start(TraceHeader {
            node,
            protocol: ProtocolConfig {
                variant: Variant::Kip966,
                unclean_leader_election: false,
                min_insync_replicas: 1,
                brokers: vec![1, 2],
            },
            fsync_always: false,
        })
    }

    fn fetch(offset: u64) -> TracedMessage {
        TracedMessage::Peer(insync_impl::protocol::PeerMessage::Fetch {
            leader_epoch: 1,
            fetch_offset: offset,
            last_fetched_epoch: 1,
            broker_epoch: 0,
        })
    }

    fn log(node: NodeId, events: Vec<(Input, Vec<(NodeId, TracedMessage)>)>) -> NodeLog {
        let events = events
            .into_iter()
            .enumerate()
            .map(|(index, (input, sent))| Event {
                index: index as u64,
                input,
                sent: sent.into_iter().map(|(to, m)| (to, 0, m)).collect(),
                writes: vec![],
                state: None,
            })
            .collect();
        NodeLog {
            node,
            name: format!("{node:?}"),
            events,
            torn: None,
        }
    }

    fn receive(from: NodeId, message: TracedMessage) -> Input {
        Input::Message {
            from,
            received: 0,
            message,
        }
    }

    const LEADER: NodeId = NodeId::Broker(1);
    const FOLLOWER: NodeId = NodeId::Broker(2);

    /// Goal: a receive names the earliest equal send after the one named before it (sends
    /// skipped over were lost), and comes after it in the merged order even when its node's
    /// log is read first.
    #[test]
    fn receives_follow_the_sends_they_name() {
        let follower = log(
            FOLLOWER,
            vec![
                (start(FOLLOWER), vec![(LEADER, fetch(0))]),
                (Input::Timer(imp_timer()), vec![(LEADER, fetch(0))]),
                (Input::Stop, vec![]),
            ],
        );
        let leader = log(
            LEADER,
            vec![
                (start(LEADER), vec![]),
                (receive(FOLLOWER, fetch(0)), vec![]),
            ],
        );
        let logs = [leader, follower];
        let merged = merge(&logs).expect("a merge");
        let position = |at: At| merged.order.iter().position(|a| *a == at).unwrap();
        assert!(position((1, 0)) < position((0, 1)), "{:?}", merged.order);
        assert!(merged.from_unrecorded_tails.is_empty());
    }

    fn imp_timer() -> insync_impl::protocol::Timer {
        insync_impl::protocol::Timer::FetchRetry
    }

    /// Goal: a message nobody sent is unexplained when the sender stopped cleanly, and is
    /// taken as a send of the unrecorded tail when its incarnation ended in a crash.
    #[test]
    fn an_unsent_receive_is_refused_unless_the_sender_crashed() {
        let leader = || {
            log(
                LEADER,
                vec![
                    (start(LEADER), vec![]),
                    (receive(FOLLOWER, fetch(7)), vec![]),
                ],
            )
        };
        let stopped = log(
            FOLLOWER,
            vec![(start(FOLLOWER), vec![]), (Input::Stop, vec![])],
        );
        let error = merge(&[leader(), stopped]).unwrap_err();
        assert!(matches!(
            error,
            MergeError::Unsent {
                at: (0, 1),
                from: FOLLOWER
            }
        ));

        let crashed = log(FOLLOWER, vec![(start(FOLLOWER), vec![(LEADER, fetch(0))])]);
        let merged = merge(&[leader(), crashed]).expect("a merge");
        assert_eq!(merged.from_unrecorded_tails, vec![(0, 1)]);
    }
}
