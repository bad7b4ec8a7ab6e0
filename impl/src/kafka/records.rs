//! Record batch v2 in (Produce), record batch v2 out (Fetch), and what a Kafka record keeps in
//! an insync record's value bytes.
//!
//! **Stored form.** The core stores each record's value as opaque bytes; a Kafka record is
//! kept there as ([`STORED_MAGIC`], then big-endian fields):
//! `flags: u8` (bit 0 key present, bit 1 value present, bit 2 idempotent producer),
//! `timestamp: i64` (CreateTime, milliseconds), `key: u32 length + bytes` if present,
//! `value: u32 length + bytes` if present, `headers: u32 count`, each `key: u32 length +
//! UTF-8 bytes`, `present: u8`, `value: u32 length + bytes` if present. The producer id and
//! sequence are the insync record's own fields, the offset and leader epoch too. A value that
//! does not parse as this form (written by insync's own client) is served as a Kafka record
//! with that value, no key, no headers and timestamp -1.
//!
//! **Produce.** One batch per partition (as Kafka requires of v2), uncompressed, not
//! transactional, 1..=`PRODUCE_RECORDS_MAX` records; the CRC32C is checked (by the decoder)
//! before any record is looked at, and every length inside is bounded by the bytes present
//! before the decoder allocates by it. Nothing reaches the core unless the whole batch
//! decoded, so a bad batch is never half-written.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::core::PRODUCE_RECORDS_MAX;
use crate::protocol::Record;

/// The first bytes of a Kafka record's stored form.
pub const STORED_MAGIC: &[u8; 4] = b"kfk1";

const FLAG_KEY: u8 = 1;
const FLAG_VALUE: u8 = 2;
const FLAG_IDEMPOTENT: u8 = 4;

/// Bytes of a v2 batch before its first record.
const BATCH_HEADER_BYTES: usize = 61;

/// A produce batch as the core will take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceBatch {
    /// `(producer id, producer epoch)` of an idempotent producer; `None`: plain producer.
    pub producer: Option<(i64, i16)>,
    pub base_sequence: i32,
    /// Each record in its stored form.
    pub values: Vec<Vec<u8>>,
}

/// Why a batch is refused; nothing of it is appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("{0} records in one batch; at most {PRODUCE_RECORDS_MAX} (set batch.num.messages)")]
    TooManyRecords(i64),
    #[error("compressed batches are not served (compression.type=none)")]
    Compressed,
    #[error("transactional and control batches are not served")]
    Transactional,
}

/// Decodes the `records` of one partition of a produce request.
pub fn decode_produce(records: &Bytes) -> Result<ProduceBatch, BatchError> {
    let corrupt = |error: &dyn std::fmt::Display| BatchError::Corrupt(error.to_string());
    let mut headers_buffer = records.clone();
    let infos = RecordBatchDecoder::decode_batch_info(&mut headers_buffer)
        .map_err(|error| corrupt(&error))?;
    let [info] = infos.as_slice() else {
        return Err(BatchError::Corrupt(format!(
            "{} batches where one v2 batch is expected",
            infos.len()
        )));
    };
    if headers_buffer.has_remaining() {
        return Err(BatchError::Corrupt("bytes after the batch".into()));
    }
    if info.record_count < 1 || info.record_count as usize > PRODUCE_RECORDS_MAX {
        return Err(BatchError::TooManyRecords(i64::from(info.record_count)));
    }
    if info.compression != Compression::None {
        return Err(BatchError::Compressed);
    }
    if info.transactional || info.control {
        return Err(BatchError::Transactional);
    }
    check_record_lengths(
        &records[BATCH_HEADER_BYTES.min(records.len())..],
        info.record_count,
    )?;
    let mut body = records.clone();
    let set = RecordBatchDecoder::decode(&mut body).map_err(|error| corrupt(&error))?;
    assert_eq!(
        set.records.len(),
        info.record_count as usize,
        "the decoder reads the count"
    );
    let producer = (info.producer_id >= 0).then_some((info.producer_id, info.producer_epoch));
    let values = set
        .records
        .iter()
        .map(|record| store(record, producer.is_some()))
        .collect();
    Ok(ProduceBatch {
        producer,
        base_sequence: info.base_sequence,
        values,
    })
}

/// The record decoder reserves room by the header count it reads; this walks each record's
/// lengths first so that no count exceeds the bytes that could hold it.
fn check_record_lengths(mut records: &[u8], count: i32) -> Result<(), BatchError> {
    let corrupt = |what: &str| Err(BatchError::Corrupt(format!("record {what}")));
    for _ in 0..count {
        let length =
            read_varint(&mut records).ok_or(BatchError::Corrupt("record length".into()))?;
        let Some(length) = usize::try_from(length).ok().filter(|l| *l <= records.len()) else {
            return corrupt("length beyond the batch");
        };
        let (mut body, rest) = records.split_at(length);
        records = rest;
        if body.is_empty() {
            return corrupt("without attributes");
        }
        body.advance(1);
        let fields = (0..2).try_for_each(|_| read_varint(&mut body).map(drop).ok_or(()));
        if fields.is_err() {
            return corrupt("timestamp or offset delta");
        }
        for _ in 0..2 {
            match read_varint(&mut body) {
                Some(-1) => {}
                Some(n) if n >= 0 && (n as u64) <= body.len() as u64 => body.advance(n as usize),
                _ => return corrupt("key or value length"),
            }
        }
        match read_varint(&mut body) {
            Some(n) if n >= 0 && (n as u64) <= body.len() as u64 / 2 => {}
            _ => return corrupt("header count"),
        }
    }
    Ok(())
}

/// A zig-zag varint (Kafka's record fields), at most 10 bytes.
fn read_varint(buffer: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buffer.first()?;
        buffer.advance(1);
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// A Kafka record's stored form (module doc).
fn store(record: &KafkaRecord, idempotent: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + record.value.as_ref().map_or(0, |v| v.len()));
    out.extend_from_slice(STORED_MAGIC);
    let mut flags = 0;
    flags |= if record.key.is_some() { FLAG_KEY } else { 0 };
    flags |= if record.value.is_some() {
        FLAG_VALUE
    } else {
        0
    };
    flags |= if idempotent { FLAG_IDEMPOTENT } else { 0 };
    out.put_u8(flags);
    out.put_i64(record.timestamp);
    for bytes in [&record.key, &record.value].into_iter().flatten() {
        put_bytes(&mut out, bytes);
    }
    out.put_u32(u32::try_from(record.headers.len()).expect("bounded by the frame"));
    for (key, value) in &record.headers {
        put_bytes(&mut out, key.as_bytes());
        out.put_u8(u8::from(value.is_some()));
        if let Some(value) = value {
            put_bytes(&mut out, value);
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).expect("bounded by the frame"));
    out.extend_from_slice(bytes);
}

/// What a stored value holds, as a Kafka record's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub idempotent: bool,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: IndexMap<StrBytes, Option<Bytes>>,
}

/// Parses a stored value; `None` if it is not in the stored form.
pub fn parse_stored(mut bytes: &[u8]) -> Option<StoredRecord> {
    if !bytes.starts_with(STORED_MAGIC) {
        return None;
    }
    bytes.advance(STORED_MAGIC.len());
    let flags = take_u8(&mut bytes)?;
    let timestamp = take_u64(&mut bytes)? as i64;
    let key = (flags & FLAG_KEY != 0).then(|| take_bytes(&mut bytes));
    let key = key.map_or(Some(None), |key| key.map(Some))?;
    let value = (flags & FLAG_VALUE != 0).then(|| take_bytes(&mut bytes));
    let value = value.map_or(Some(None), |value| value.map(Some))?;
    let count = take_u32(&mut bytes)?;
    let mut headers = IndexMap::new();
    for _ in 0..count {
        let key = StrBytes::from_utf8(take_bytes(&mut bytes)?).ok()?;
        let value = match take_u8(&mut bytes)? {
            0 => None,
            _ => Some(take_bytes(&mut bytes)?),
        };
        headers.insert(key, value);
    }
    bytes.is_empty().then_some(StoredRecord {
        idempotent: flags & FLAG_IDEMPOTENT != 0,
        timestamp,
        key,
        value,
        headers,
    })
}

fn take_u8(bytes: &mut &[u8]) -> Option<u8> {
    (!bytes.is_empty()).then(|| bytes.get_u8())
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    (bytes.len() >= 4).then(|| bytes.get_u32())
}

fn take_u64(bytes: &mut &[u8]) -> Option<u64> {
    (bytes.len() >= 8).then(|| bytes.get_u64())
}

fn take_bytes(bytes: &mut &[u8]) -> Option<Bytes> {
    let length = usize::try_from(take_u32(bytes)?).ok()?;
    if bytes.len() < length {
        return None;
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Some(Bytes::copy_from_slice(taken))
}

/// The Kafka form of committed records, for a fetch: the leading records whose stored size
/// fits `max_bytes` (at least one, as Kafka serves a first record larger than the limit).
pub fn encode_fetch(records: &[Record], max_bytes: usize) -> Bytes {
    let mut size = 0;
    let taken = records
        .iter()
        .take_while(|record| {
            size += record.value.len() + 24;
            size <= max_bytes || size == record.value.len() + 24
        })
        .map(to_kafka)
        .collect::<Vec<_>>();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &taken, &options)
        .expect("uncompressed v2 batches of bounded records encode");
    out.freeze()
}

fn to_kafka(record: &Record) -> KafkaRecord {
    let stored = parse_stored(&record.value).unwrap_or_else(|| StoredRecord {
        idempotent: false,
        timestamp: -1,
        key: None,
        value: Some(Bytes::copy_from_slice(&record.value)),
        headers: IndexMap::new(),
    });
    let offset = i64::try_from(record.offset).expect("offsets fit int64");
    let (producer_id, producer_epoch, sequence) = match stored.idempotent {
        true => (record.producer_id as i64, 0, record.sequence as i32),
        false => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    KafkaRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: i32::try_from(record.leader_epoch).unwrap_or(i32::MAX),
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence,
        timestamp: stored.timestamp,
        key: stored.key,
        value: stored.value,
        headers: stored.headers,
    }
}
