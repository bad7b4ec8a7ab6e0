//! Record identities: a real run's records are `(producer id, sequence)` of many producers;
//! the model's are small numbers. Each distinct identity gets the next model record id in the
//! order validation first meets it, and the run's messages and snapshots are rewritten as if
//! the harness's one producer had written them (`mapping::HARNESS_PRODUCER_ID`, its
//! payloads), so the existing mapping and abstraction apply unchanged. The renaming is
//! injective, so two records the run tells apart stay apart: the model's idempotence (one
//! append per record id) is the real one's (one append per producer sequence).

use std::collections::BTreeMap;

use insync_impl::protocol::{self as imp, ClientReply, ClientRequest, PeerMessage, RecordId};
use insync_impl::trace_log::TracedMessage;

use crate::mapping::{payload, HARNESS_PRODUCER_ID};
use crate::router::Frame;

/// The model's record ids are `u8`, and 0 is not one.
pub const RECORDS_MAX: usize = u8::MAX as usize;

/// More distinct records than the model can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyRecords;

#[derive(Debug, Default)]
pub struct Renaming {
    ids: BTreeMap<RecordId, u8>,
}

impl Renaming {
    /// The model id of `id`, given on first sight.
    pub fn id(&mut self, id: RecordId) -> Result<RecordId, TooManyRecords> {
        let next = self.ids.len() + 1;
        let model = match self.ids.get(&id) {
            Some(model) => *model,
            None if next > RECORDS_MAX => return Err(TooManyRecords),
            None => {
                let model = next as u8;
                self.ids.insert(id, model);
                model
            }
        };
        Ok(RecordId {
            producer_id: HARNESS_PRODUCER_ID,
            sequence: u32::from(model),
        })
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
            value: payload(id.sequence as u8),
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
                    values: vec![payload(id.sequence as u8); values.len()],
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
                let id = self.named(*producer_id, *first_sequence)?;
                ClientReply::ProduceResponse {
                    producer_id: id.producer_id,
                    first_sequence: id.sequence,
                    result: result.clone(),
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

    /// A broker's snapshot with its log (given apart: see `trace_log::event`) renamed in.
    pub fn broker_snapshot(
        &mut self,
        snapshot: &imp::BrokerSnapshot,
        log: &[(u64, u32, RecordId)],
    ) -> Result<imp::BrokerSnapshot, TooManyRecords> {
        let mut renamed = snapshot.clone();
        renamed.log = log
            .iter()
            .map(|(offset, epoch, id)| Ok((*offset, *epoch, self.id(*id)?)))
            .collect::<Result<_, TooManyRecords>>()?;
        renamed.waiting = snapshot
            .waiting
            .iter()
            .map(|(id, offset)| Ok((self.id(*id)?, *offset)))
            .collect::<Result<_, TooManyRecords>>()?;
        Ok(renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(producer_id: u64, sequence: u32) -> RecordId {
        RecordId {
            producer_id,
            sequence,
        }
    }

    /// Goal: identities are numbered in order of first sight, the same identity always gets
    /// the same number, two producers' equal sequences stay apart, and the 256th distinct
    /// record is refused rather than wrapped.
    #[test]
    fn renaming_is_injective_and_bounded() {
        let mut renaming = Renaming::default();
        let first = renaming.id(id(900, 0)).unwrap();
        assert_eq!(first, id(HARNESS_PRODUCER_ID, 1));
        assert_eq!(renaming.id(id(901, 0)).unwrap(), id(HARNESS_PRODUCER_ID, 2));
        assert_eq!(renaming.id(id(900, 0)).unwrap(), first);
        for sequence in 1..(RECORDS_MAX as u32 - 1) {
            renaming.id(id(900, sequence)).unwrap();
        }
        assert_eq!(renaming.id(id(902, 0)), Err(TooManyRecords));
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
