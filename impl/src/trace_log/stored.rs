//! The shape of a record on disk (format v2): an [`Event`] with every list of records written
//! as runs.
//!
//! A trace record names records by `(offset, leader epoch, record id)` only, and nearly every
//! list of them is a few runs: a produce batch is one producer's consecutive sequences at
//! consecutive offsets in one epoch, and a fetch answer or an append is a few such batches back
//! to back. Written one by one they were 18 bytes a record, as much as the trace's whole rest
//! and a fifth of a 100-byte record's payload; as runs they are about 20 bytes a batch. The same
//! goes for a produce request's values, which the trace keeps only as a count.
//!
//! The writer thread converts (`StoredEvent::from`), the reader converts back
//! ([`StoredEvent::into_event`]); everything above this file sees [`Event`] only. The two are
//! inverse on what the event loop records (payloads already left out): a test asserts it.

use serde::{Deserialize, Serialize};

use super::event::{Event, Input, LogWrite, NodeState, TracedMessage};
use crate::protocol::{
    Acks, ClientReply, ClientRequest, ConsumeResult, Epoch, FetchResult, NodeId, Offset,
    PeerMessage, Record, RecordId,
};

/// Records at consecutive offsets, of one leader epoch and one producer, with consecutive
/// sequence numbers: `count` >= 1 of them, the first at `offset` with `sequence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub offset: Offset,
    pub leader_epoch: Epoch,
    pub producer_id: u64,
    pub sequence: u32,
    pub count: u32,
}

impl Run {
    fn start(offset: Offset, leader_epoch: Epoch, id: RecordId) -> Self {
        Run {
            offset,
            leader_epoch,
            producer_id: id.producer_id,
            sequence: id.sequence,
            count: 1,
        }
    }

    /// Grows the run by the next record if that record continues it.
    fn extend(&mut self, offset: Offset, leader_epoch: Epoch, id: RecordId) -> bool {
        let next_offset = self.offset.checked_add(u64::from(self.count));
        let next_sequence = self.sequence.checked_add(self.count);
        let continues = next_offset == Some(offset)
            && next_sequence == Some(id.sequence)
            && leader_epoch == self.leader_epoch
            && id.producer_id == self.producer_id
            && self.count < u32::MAX;
        if continues {
            self.count += 1;
        }
        continues
    }

    /// Whether the run names at least one record and its last offset and sequence exist.
    fn is_well_formed(&self) -> bool {
        let last = u64::from(self.count).checked_sub(1);
        last.is_some_and(|last| {
            self.offset.checked_add(last).is_some()
                && u64::from(self.sequence) + last <= u64::from(u32::MAX)
        })
    }

    /// The run's records, one by one.
    fn summaries(self) -> impl Iterator<Item = (Offset, Epoch, RecordId)> {
        (0..self.count).map(move |i| {
            let id = RecordId {
                producer_id: self.producer_id,
                sequence: self.sequence + i,
            };
            (self.offset + u64::from(i), self.leader_epoch, id)
        })
    }
}

/// The most records one trace record may name, over all its lists once runs are expanded: a
/// bound for the reader, whose input may be damaged or edited (a run's `count` is a `u32`), and
/// for the writer, which refuses a record beyond it.
pub const RECORDS_PER_EVENT_MAX: u64 = 4 * 1024 * 1024;

/// The shortest list of runs that spells `summaries` in order.
pub fn runs_of(summaries: impl IntoIterator<Item = (Offset, Epoch, RecordId)>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (offset, epoch, id) in summaries {
        let extended = runs
            .last_mut()
            .is_some_and(|run| run.extend(offset, epoch, id));
        if !extended {
            runs.push(Run::start(offset, epoch, id));
        }
    }
    runs
}

fn summary(record: &Record) -> (Offset, Epoch, RecordId) {
    let id = RecordId {
        producer_id: record.producer_id,
        sequence: record.sequence,
    };
    (record.offset, record.leader_epoch, id)
}

/// The record a summary stands for, without its payload, as the trace keeps records in
/// messages.
fn unsummarized((offset, leader_epoch, id): (Offset, Epoch, RecordId)) -> Record {
    Record {
        offset,
        leader_epoch,
        producer_id: id.producer_id,
        sequence: id.sequence,
        value: Vec::new(),
    }
}

/// Records without payloads, as the trace keeps them in messages.
fn records_of(runs: Vec<Run>) -> Vec<Record> {
    runs.into_iter()
        .flat_map(Run::summaries)
        .map(unsummarized)
        .collect()
}

/// A traced message, its records as runs; every other message as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum StoredMessage {
    Other(TracedMessage),
    FetchRecords {
        leader_epoch: Epoch,
        fetch_offset: Offset,
        runs: Vec<Run>,
        high_watermark: Offset,
    },
    ConsumeRecords {
        runs: Vec<Run>,
        high_watermark: Offset,
    },
    /// A produce request; its values only counted.
    Produce {
        producer_id: u64,
        first_sequence: u32,
        values: u32,
        acks: Acks,
    },
}

impl From<TracedMessage> for StoredMessage {
    fn from(message: TracedMessage) -> Self {
        let runs = |records: &[Record]| runs_of(records.iter().map(summary));
        match message {
            TracedMessage::Peer(PeerMessage::FetchResponse {
                leader_epoch,
                fetch_offset,
                result:
                    FetchResult::Records {
                        records,
                        high_watermark,
                    },
            }) => StoredMessage::FetchRecords {
                leader_epoch,
                fetch_offset,
                runs: runs(&records),
                high_watermark,
            },
            TracedMessage::Reply(ClientReply::ConsumeResponse {
                result:
                    ConsumeResult::Ok {
                        records,
                        high_watermark,
                    },
            }) => StoredMessage::ConsumeRecords {
                runs: runs(&records),
                high_watermark,
            },
            TracedMessage::Request(ClientRequest::Produce {
                producer_id,
                first_sequence,
                values,
                acks,
            }) => StoredMessage::Produce {
                producer_id,
                first_sequence,
                values: u32::try_from(values.len()).expect("a produce request is bounded"),
                acks,
            },
            other => StoredMessage::Other(other),
        }
    }
}

impl StoredMessage {
    fn runs(&self) -> Option<&Vec<Run>> {
        match self {
            StoredMessage::FetchRecords { runs, .. }
            | StoredMessage::ConsumeRecords { runs, .. } => Some(runs),
            StoredMessage::Other(_) | StoredMessage::Produce { .. } => None,
        }
    }

    fn into_message(self) -> TracedMessage {
        match self {
            StoredMessage::Other(message) => message,
            StoredMessage::FetchRecords {
                leader_epoch,
                fetch_offset,
                runs,
                high_watermark,
            } => TracedMessage::Peer(PeerMessage::FetchResponse {
                leader_epoch,
                fetch_offset,
                result: FetchResult::Records {
                    records: records_of(runs),
                    high_watermark,
                },
            }),
            StoredMessage::ConsumeRecords {
                runs,
                high_watermark,
            } => TracedMessage::Reply(ClientReply::ConsumeResponse {
                result: ConsumeResult::Ok {
                    records: records_of(runs),
                    high_watermark,
                },
            }),
            StoredMessage::Produce {
                producer_id,
                first_sequence,
                values,
                acks,
            } => TracedMessage::Request(ClientRequest::Produce {
                producer_id,
                first_sequence,
                values: vec![Vec::new(); values as usize],
                acks,
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum StoredInput {
    Message {
        from: NodeId,
        received: u64,
        message: StoredMessage,
    },
    Other(Input),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum StoredWrite {
    Append(Vec<Run>),
    Other(LogWrite),
}

/// The state after an input; a broker's log (in a `Start` record) as runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredState {
    state: NodeState,
    log: Vec<Run>,
}

impl From<NodeState> for StoredState {
    fn from(mut state: NodeState) -> Self {
        let log = match &mut state {
            NodeState::Broker(snapshot) => runs_of(std::mem::take(&mut snapshot.log)),
            NodeState::Controller(_) => Vec::new(),
        };
        StoredState { state, log }
    }
}

impl StoredState {
    fn into_state(self) -> NodeState {
        let StoredState { mut state, log } = self;
        if let NodeState::Broker(snapshot) = &mut state {
            snapshot.log = log.into_iter().flat_map(Run::summaries).collect();
        }
        state
    }
}

/// One record as the file holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    index: u64,
    input: StoredInput,
    sent: Vec<(NodeId, u64, StoredMessage)>,
    writes: Vec<StoredWrite>,
    state: Option<StoredState>,
}

impl From<Event> for StoredEvent {
    fn from(event: Event) -> Self {
        let input = match event.input {
            Input::Message {
                from,
                received,
                message,
            } => StoredInput::Message {
                from,
                received,
                message: message.into(),
            },
            other => StoredInput::Other(other),
        };
        let sent = event.sent.into_iter();
        let write = |write| match write {
            LogWrite::Append(records) => StoredWrite::Append(runs_of(records)),
            other => StoredWrite::Other(other),
        };
        StoredEvent {
            index: event.index,
            input,
            sent: sent
                .map(|(to, n, message)| (to, n, message.into()))
                .collect(),
            writes: event.writes.into_iter().map(write).collect(),
            state: event.state.map(StoredState::from),
        }
    }
}

impl StoredEvent {
    /// Every run well formed and all of them within [`RECORDS_PER_EVENT_MAX`], so that
    /// [`StoredEvent::into_event`] neither overflows nor allocates without bound.
    pub fn check(&self) -> Result<(), String> {
        if let Some(bad) = self.runs().find(|run| !run.is_well_formed()) {
            return Err(format!("record {}: malformed run {bad:?}", self.index));
        }
        let produced = self.messages().map(|message| match message {
            StoredMessage::Produce { values, .. } => u64::from(*values),
            _ => 0,
        });
        let total: u64 =
            self.runs().map(|run| u64::from(run.count)).sum::<u64>() + produced.sum::<u64>();
        if total > RECORDS_PER_EVENT_MAX {
            return Err(format!(
                "record {} names {total} records, more than the bound {RECORDS_PER_EVENT_MAX}",
                self.index
            ));
        }
        Ok(())
    }

    /// The messages of the record: its input's and those it sent.
    fn messages(&self) -> impl Iterator<Item = &StoredMessage> {
        let input = match &self.input {
            StoredInput::Message { message, .. } => Some(message),
            StoredInput::Other(_) => None,
        };
        input.into_iter().chain(self.sent.iter().map(|(_, _, m)| m))
    }

    /// Every run of the record: its messages', its appends', its state's.
    fn runs(&self) -> impl Iterator<Item = &Run> {
        let appends = self.writes.iter().filter_map(|write| match write {
            StoredWrite::Append(runs) => Some(runs),
            StoredWrite::Other(_) => None,
        });
        let state = self.state.iter().map(|state| &state.log);
        self.messages()
            .filter_map(StoredMessage::runs)
            .chain(appends)
            .chain(state)
            .flatten()
    }

    /// The event back; only after [`StoredEvent::check`].
    pub fn into_event(self) -> Event {
        let input = match self.input {
            StoredInput::Message {
                from,
                received,
                message,
            } => Input::Message {
                from,
                received,
                message: message.into_message(),
            },
            StoredInput::Other(other) => other,
        };
        let write = |write| match write {
            StoredWrite::Append(runs) => {
                LogWrite::Append(runs.into_iter().flat_map(Run::summaries).collect())
            }
            StoredWrite::Other(other) => other,
        };
        let sent = self.sent.into_iter();
        Event {
            index: self.index,
            input,
            sent: sent.map(|(to, n, m)| (to, n, m.into_message())).collect(),
            writes: self.writes.into_iter().map(write).collect(),
            state: self.state.map(StoredState::into_state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BrokerSnapshot, FetchState};

    /// Two producers' batches back to back, a new epoch in the middle of the second.
    fn summaries() -> Vec<(Offset, Epoch, RecordId)> {
        let mut list: Vec<_> = (0..5)
            .map(|i| (10 + i, 1, RecordId::new(7, 100 + i as u32)))
            .collect();
        list.extend((0..3).map(|i| (15 + i, 1, RecordId::new(9, i as u32))));
        list.extend((0..2).map(|i| (18 + i, 2, RecordId::new(9, 3 + i as u32))));
        list
    }

    fn records() -> Vec<Record> {
        summaries().into_iter().map(unsummarized).collect()
    }

    fn broker_state(log: Vec<(Offset, Epoch, RecordId)>) -> NodeState {
        NodeState::Broker(Box::new(BrokerSnapshot {
            id: 1,
            broker_epoch: 0,
            registered: true,
            view: None,
            log,
            log_end_offset: 20,
            hw: 12,
            durable_end_offset: 20,
            hw_checkpoint: 10,
            leader_epoch_start_offset: None,
            replicas: Default::default(),
            pending_isr: None,
            waiting: vec![(RecordId::new(7, 104), 14)],
            fetch_state: FetchState::Fetching,
            armed_timers: Default::default(),
            timers_fired: Default::default(),
        }))
    }

    /// Goal: a run breaks exactly where the offset, sequence, epoch or producer does not
    /// continue, and expands back to the same list.
    #[test]
    fn runs_break_where_a_batch_does() {
        let runs = runs_of(summaries());
        let shape: Vec<(Offset, u32)> = runs.iter().map(|r| (r.offset, r.count)).collect();
        assert_eq!(shape, vec![(10, 5), (15, 3), (18, 2)]);
        let back: Vec<_> = runs.into_iter().flat_map(Run::summaries).collect();
        assert_eq!(back, summaries());
        let gap = vec![(1, 1, RecordId::new(7, 1)), (3, 1, RecordId::new(7, 2))];
        assert_eq!(runs_of(gap).len(), 2, "an offset gap starts a new run");
    }

    /// Goal: the stored form gives back every part of what the event loop records: message
    /// records (both directions), produce values as empty values, appends, a start's log.
    #[test]
    fn an_event_survives_the_stored_form() {
        let fetch = PeerMessage::FetchResponse {
            leader_epoch: 2,
            fetch_offset: 10,
            result: FetchResult::Records {
                records: records(),
                high_watermark: 12,
            },
        };
        let produce = ClientRequest::Produce {
            producer_id: 7,
            first_sequence: 100,
            values: vec![Vec::new(); 5],
            acks: Acks::All,
        };
        let consume = ClientReply::ConsumeResponse {
            result: ConsumeResult::Ok {
                records: records(),
                high_watermark: 12,
            },
        };
        let event = Event {
            index: 4,
            input: Input::Message {
                from: NodeId::Client(3),
                received: 0,
                message: TracedMessage::Request(produce),
            },
            sent: vec![
                (NodeId::Broker(2), 0, TracedMessage::Peer(fetch)),
                (NodeId::Client(3), 0, TracedMessage::Reply(consume)),
            ],
            writes: vec![LogWrite::Append(summaries()), LogWrite::Flush],
            state: Some(broker_state(summaries())),
        };
        let stored = StoredEvent::from(event.clone());
        assert_eq!(stored.check(), Ok(()));
        assert_eq!(stored.into_event(), event);
    }

    /// Goal: a run the writer cannot have produced (empty, past the end of the offsets or the
    /// sequences, or beyond the bound) is refused before it is expanded.
    #[test]
    fn a_malformed_run_is_refused() {
        let state = |run: Run| {
            let mut stored = StoredEvent::from(Event {
                index: 0,
                input: Input::Stop,
                sent: vec![],
                writes: vec![],
                state: Some(broker_state(Vec::new())),
            });
            stored.state.as_mut().expect("a state").log = vec![run];
            stored
        };
        let run = Run::start(0, 1, RecordId::new(7, 0));
        let bad = [
            Run { count: 0, ..run },
            Run {
                offset: u64::MAX,
                count: 2,
                ..run
            },
            Run {
                sequence: u32::MAX,
                count: 2,
                ..run
            },
            Run {
                count: (RECORDS_PER_EVENT_MAX + 1) as u32,
                ..run
            },
        ];
        for run in bad {
            assert!(state(run).check().is_err(), "{run:?} accepted");
        }
        assert_eq!(state(Run { count: 3, ..run }).check(), Ok(()));
    }
}
