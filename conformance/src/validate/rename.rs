//! Record identities: a real run's records are `(producer id, sequence)` of many producers;
//! the model's are small numbers. Each distinct identity gets the next model record id in the
//! order validation first meets it, and the run's messages and snapshots are rewritten as if
//! the harness's one producer had written them (`mapping::HARNESS_PRODUCER_ID`, its
//! payloads), so the existing mapping and abstraction apply unchanged. The renaming is
//! injective, so two records the run tells apart stay apart: the model's idempotence (one
//! append per record id) is the real one's (one append per producer sequence).
//!
//! A produce of a batch of N records is N model produces, one per record, in the batch's
//! order (docs/validation.md "Batches"). The node answers the batch once, when the model
//! answers its last record: so the node's answer is renamed to the model's answer for the
//! last record (its offset moved from the batch's first record to its last), and the model's
//! answers for the other records are absorbed (`absorbed`).

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, ClientReply, ClientRequest, PeerMessage, RecordId};
use insync_impl::trace_log::TracedMessage;

use crate::mapping::{payload, HARNESS_PRODUCER_ID};
use crate::router::Frame;

/// The model's record ids are `u32`, and 0 is not one.
pub const RECORDS_MAX: usize = u32::MAX as usize;

/// More distinct records than the model can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyRecords;

#[derive(Debug, Default)]
pub struct Renaming {
    ids: BTreeMap<RecordId, u32>,
    /// Every batch produced so far: (producer id, first sequence) → its record count.
    batches: BTreeMap<(u64, u32), u32>,
    /// The model id of each record of a batch of more than one → the model id of the
    /// batch's last record.
    last_of_batch: BTreeMap<u32, u32>,
}

impl Renaming {
    /// The model id of `id`, given on first sight.
    pub fn id(&mut self, id: RecordId) -> Result<RecordId, TooManyRecords> {
        let next = self.ids.len() + 1;
        let model = match self.ids.get(&id) {
            Some(model) => *model,
            None if next > RECORDS_MAX => return Err(TooManyRecords),
            None => {
                let model = u32::try_from(next).expect("below RECORDS_MAX");
                self.ids.insert(id, model);
                model
            }
        };
        Ok(RecordId {
            producer_id: HARNESS_PRODUCER_ID,
            sequence: model,
        })
    }

    /// Whether the model's answer to record `model_id` is absorbed into its batch's answer:
    /// the record is in a batch and is not its last.
    pub fn absorbed(&self, model_id: u32) -> bool {
        self.last_of_batch
            .get(&model_id)
            .is_some_and(|last| *last != model_id)
    }

    /// A produce of `values.len()` records as that many single-record produces, each as the
    /// harness's producer would have sent it, and the batch remembered for its answer.
    pub fn produce_batch(&mut self, request: &ClientRequest) -> Result<Vec<Frame>, TooManyRecords> {
        let ClientRequest::Produce {
            producer_id,
            first_sequence,
            values,
            acks,
        } = request
        else {
            return Ok(vec![Frame::Request(self.request(request)?)]);
        };
        let count = u32::try_from(values.len()).expect("a batch is at most PRODUCE_RECORDS_MAX");
        self.batches.insert((*producer_id, *first_sequence), count);
        let ids = (0..count)
            .map(|i| self.named(*producer_id, first_sequence.wrapping_add(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let last = ids.last().map_or(0, |id| id.sequence);
        for id in &ids {
            if count > 1 {
                self.last_of_batch.insert(id.sequence, last);
            }
        }
        Ok(ids
            .into_iter()
            .map(|id| {
                Frame::Request(ClientRequest::Produce {
                    producer_id: id.producer_id,
                    first_sequence: id.sequence,
                    values: vec![payload(id.sequence)],
                    acks: *acks,
                })
            })
            .collect())
    }

    /// How many records the batch starting at (producer id, sequence) has (1 if unknown).
    fn batch_len(&self, producer_id: u64, first_sequence: u32) -> u32 {
        self.batches
            .get(&(producer_id, first_sequence))
            .copied()
            .unwrap_or(1)
    }

    pub fn record(&mut self, record: &imp::Record) -> Result<imp::Record, TooManyRecords> {
        let id = self.id(RecordId {
            producer_id: record.producer_id,
            sequence: record.sequence,
        })?;
        Ok(imp::Record {
            offset: record.offset,
            leader_epoch: record.leader_epoch,
            producer_id: id.producer_id,
            sequence: id.sequence,
            value: payload(id.sequence),
        })
    }

    fn records(&mut self, records: &[imp::Record]) -> Result<Vec<imp::Record>, TooManyRecords> {
        records.iter().map(|r| self.record(r)).collect()
    }

    fn named(&mut self, producer_id: u64, sequence: u32) -> Result<RecordId, TooManyRecords> {
        self.id(RecordId {
            producer_id,
            sequence,
        })
    }

    /// `message` as the harness's producer would have caused it, as the frame the mapping
    /// reads. A batch keeps its length; only its first record is named (the mapping refuses
    /// batches of more than one).
    pub fn message(&mut self, message: &TracedMessage) -> Result<Frame, TooManyRecords> {
        Ok(match message {
            TracedMessage::Peer(message) => Frame::Peer(self.peer(message)?),
            TracedMessage::Request(request) => Frame::Request(self.request(request)?),
            TracedMessage::Reply(reply) => Frame::Reply(self.reply(reply)?),
        })
    }

    fn peer(&mut self, message: &PeerMessage) -> Result<PeerMessage, TooManyRecords> {
        Ok(match message {
            PeerMessage::FetchResponse {
                leader_epoch,
                fetch_offset,
                result:
                    imp::FetchResult::Records {
                        records,
                        high_watermark,
                    },
            } => PeerMessage::FetchResponse {
                leader_epoch: *leader_epoch,
                fetch_offset: *fetch_offset,
                result: imp::FetchResult::Records {
                    records: self.records(records)?,
                    high_watermark: *high_watermark,
                },
            },
            other => other.clone(),
        })
    }

    fn request(&mut self, request: &ClientRequest) -> Result<ClientRequest, TooManyRecords> {
        Ok(match request {
            ClientRequest::Produce {
                producer_id,
                first_sequence,
                values,
                acks,
            } => {
                let id = self.named(*producer_id, *first_sequence)?;
                ClientRequest::Produce {
                    producer_id: id.producer_id,
                    first_sequence: id.sequence,
                    values: vec![payload(id.sequence); values.len()],
                    acks: *acks,
                }
            }
            other => other.clone(),
        })
    }

    fn reply(&mut self, reply: &ClientReply) -> Result<ClientReply, TooManyRecords> {
        Ok(match reply {
            ClientReply::ProduceResponse {
                producer_id,
                first_sequence,
                result,
            } => {
                // The batch's answer is the model's answer for its last record.
                let more = self.batch_len(*producer_id, *first_sequence) - 1;
                let id = self.named(*producer_id, first_sequence.wrapping_add(more))?;
                let result = match result {
                    imp::ProduceResult::Ok { offset } => imp::ProduceResult::Ok {
                        offset: offset + u64::from(more),
                    },
                    other => other.clone(),
                };
                ClientReply::ProduceResponse {
                    producer_id: id.producer_id,
                    first_sequence: id.sequence,
                    result,
                }
            }
            ClientReply::ConsumeResponse {
                result:
                    imp::ConsumeResult::Ok {
                        records,
                        high_watermark,
                    },
            } => ClientReply::ConsumeResponse {
                result: imp::ConsumeResult::Ok {
                    records: self.records(records)?,
                    high_watermark: *high_watermark,
                },
            },
            other => other.clone(),
        })
    }

    /// A broker's snapshot renamed, without its log (an empty log, a log end offset of 0):
    /// validation compares the log apart (`step::judge`), and a recorded snapshot has none.
    pub fn broker_snapshot(
        &mut self,
        snapshot: &imp::BrokerSnapshot,
    ) -> Result<imp::BrokerSnapshot, TooManyRecords> {
        let mut renamed = snapshot.clone();
        renamed.log = Vec::new();
        renamed.log_end_offset = 0;
        // A waiting batch is the model's waiting records of it not yet below the HW.
        let mut waiting = Vec::new();
        for (id, last_offset) in &snapshot.waiting {
            let count = self.batch_len(id.producer_id, id.sequence);
            let first_offset = last_offset + 1 - u64::from(count);
            for i in 0..count {
                let offset = first_offset + u64::from(i);
                let sequence = id.sequence.wrapping_add(i);
                let entry = (self.named(id.producer_id, sequence)?, offset);
                // A batch waiting twice (sent again on another connection) is the model's
                // one waiting record (conformance/DIVERGENCES.md).
                if offset >= snapshot.hw && !waiting.contains(&entry) {
                    waiting.push(entry);
                }
            }
        }
        renamed.waiting = waiting;
        Ok(renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: identities are numbered in order of first sight, the same identity always gets
    /// the same number, two producers' equal sequences stay apart, and numbering goes on past
    /// the old `u8` bound of the model's record ids.
    #[test]
    fn renaming_is_injective_past_the_old_bound() {
        let mut renaming = Renaming::default();
        let first = renaming.id(RecordId::new(900, 0)).unwrap();
        assert_eq!(first, RecordId::new(HARNESS_PRODUCER_ID, 1));
        assert_eq!(
            renaming.id(RecordId::new(901, 0)).unwrap(),
            RecordId::new(HARNESS_PRODUCER_ID, 2)
        );
        assert_eq!(renaming.id(RecordId::new(900, 0)).unwrap(), first);
        for sequence in 1..300 {
            renaming.id(RecordId::new(900, sequence)).unwrap();
        }
        assert_eq!(
            renaming.id(RecordId::new(902, 0)),
            Ok(RecordId::new(HARNESS_PRODUCER_ID, 302))
        );
    }

    /// Goal: a batch is its records' single produces, and its one answer is the model's
    /// answer to its last record: named so, its offset moved to the last record, the other
    /// records' answers absorbed.
    #[test]
    fn a_batch_is_answered_for_its_last_record() {
        let mut renaming = Renaming::default();
        let produce = ClientRequest::Produce {
            producer_id: 7,
            first_sequence: 10,
            values: vec![Vec::new(); 3],
            acks: imp::Acks::All,
        };
        let frames = renaming.produce_batch(&produce).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(renaming.absorbed(1) && renaming.absorbed(2) && !renaming.absorbed(3));
        let reply = TracedMessage::Reply(ClientReply::ProduceResponse {
            producer_id: 7,
            first_sequence: 10,
            result: imp::ProduceResult::Ok { offset: 40 },
        });
        let Frame::Reply(ClientReply::ProduceResponse {
            first_sequence,
            result,
            ..
        }) = renaming.message(&reply).unwrap()
        else {
            panic!("a produce answer")
        };
        assert_eq!(first_sequence, 3);
        assert_eq!(result, imp::ProduceResult::Ok { offset: 42 });
    }

    /// Goal: a renamed record carries the harness's producer and payload, so the existing
    /// mapping accepts it.
    #[test]
    fn renamed_records_map() {
        let mut renaming = Renaming::default();
        let record = imp::Record {
            offset: 0,
            leader_epoch: 1,
            producer_id: 77,
            sequence: 5,
            value: Vec::new(),
        };
        let renamed = renaming.record(&record).unwrap();
        let mapped = crate::mapping::record_from_impl(&renamed, 0).unwrap();
        assert_eq!((mapped.record_id, mapped.leader_epoch), (1, 1));
    }
}
