//! Record values as byte strings for serde, not sequences of numbers.
//!
//! serde's derive writes a `Vec<u8>` as a sequence: one call per byte into the encoder. The
//! bytes on the wire are the same either way (a length, then the bytes), but whether that per
//! byte call is inlined is up to the compiler, and `insync bench` saw it not inlined in one
//! build: half the throughput at 1 KiB records with nothing else changed, and the top of the
//! profile was a per-byte `Vec::extend` and `VecVisitor::visit_seq`. As byte strings a value
//! is one copy each way, whatever the compiler decides.

use serde::de::{Error, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serializer};

/// `#[serde(with = "value_bytes")]` for one value.
pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(value)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteBufVisitor)
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a byte string")
    }

    fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    /// Formats that have no byte strings (JSON) hand them over as sequences of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Bounded by the decoder's own limit on the input.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

/// `#[serde(with = "value_bytes::many")]` for a list of values.
pub mod many {
    use super::*;

    struct Bytes<'a>(&'a [u8]);

    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    struct ByteBuf(Vec<u8>);

    impl<'de> serde::Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::deserialize(deserializer).map(ByteBuf)
        }
    }

    pub fn serialize<S: Serializer>(values: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(values.len()))?;
        for value in values {
            seq.serialize_element(&Bytes(value))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let values: Vec<ByteBuf> = serde::Deserialize::deserialize(deserializer)?;
        Ok(values.into_iter().map(|ByteBuf(value)| value).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::protocol::{Acks, ClientRequest, Record};
    use crate::wire::codec;

    /// What the derive wrote before: values as sequences.
    #[derive(Serialize, Deserialize)]
    struct AsSequence {
        offset: u64,
        leader_epoch: u32,
        producer_id: u64,
        sequence: u32,
        value: Vec<u8>,
    }

    fn record() -> Record {
        Record {
            offset: 300,
            leader_epoch: 2,
            producer_id: 1 << 40,
            sequence: 7,
            value: (0..=255).collect(),
        }
    }

    /// Goal: the bytes on the wire and on disk are what they were with values as sequences,
    /// so nodes, logs and checkpoints of either build read each other.
    #[test]
    fn values_encode_as_they_did_as_sequences() {
        let r = record();
        let old = AsSequence {
            offset: r.offset,
            leader_epoch: r.leader_epoch,
            producer_id: r.producer_id,
            sequence: r.sequence,
            value: r.value.clone(),
        };
        let bytes = codec::encode(&r).unwrap();
        assert_eq!(bytes, codec::encode(&old).unwrap());
        assert_eq!(codec::decode::<Record>(&bytes).unwrap(), r);
    }

    /// Goal: a produce request's values, and JSON (numbers, not byte strings), round-trip.
    #[test]
    fn many_values_and_json_round_trip() {
        let request = ClientRequest::Produce {
            producer_id: 3,
            first_sequence: 0,
            values: vec![vec![], vec![1, 2, 3], vec![255; 1024]],
            acks: Acks::All,
        };
        let bytes = codec::encode(&request).unwrap();
        assert_eq!(codec::decode::<ClientRequest>(&bytes).unwrap(), request);
        let json = serde_json::to_string(&record()).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record());
    }
}
