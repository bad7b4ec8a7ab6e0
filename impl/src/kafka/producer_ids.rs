//! Producer ids (InitProducerId) unique across the cluster, without asking anyone.
//!
//! Kafka's brokers ask the controller for blocks of ids. Here no coordination is needed: an
//! id is `broker id | broker epoch | counter` in 10, 21 and 32 bits (63 in all, so it stays a
//! non-negative Kafka `int64`). Two brokers differ in the first field; two incarnations of
//! one broker differ in the second, since the broker epoch (KIP-903) is made durable before
//! the broker serves and grows by one at every restart; within an incarnation the counter
//! never repeats. An id is never handed out twice, so a new producer's sequence 0 can never
//! be taken for a retry of another producer's batch.
//!
//! insync's own client picks random 64-bit producer ids; a collision with an id from here is
//! as unlikely as between two of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::{BrokerEpoch, BrokerId};

const BROKER_ID_BITS: u32 = 10;
const BROKER_EPOCH_BITS: u32 = 21;
const COUNTER_BITS: u32 = 32;

/// Hands out this incarnation's producer ids.
#[derive(Debug)]
pub struct ProducerIds {
    prefix: Option<u64>,
    next: AtomicU64,
}

impl ProducerIds {
    /// `None` inside: the broker id or epoch does not fit its field, and every allocation is
    /// refused (with a reason) rather than risk a repeated id.
    pub fn new(broker: BrokerId, broker_epoch: BrokerEpoch) -> ProducerIds {
        let fits = u64::from(broker) < (1 << BROKER_ID_BITS)
            && u64::from(broker_epoch) < (1 << BROKER_EPOCH_BITS);
        let prefix = fits.then(|| {
            (u64::from(broker) << (BROKER_EPOCH_BITS + COUNTER_BITS))
                | (u64::from(broker_epoch) << COUNTER_BITS)
        });
        ProducerIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// A fresh id, or why there is none.
    pub fn allocate(&self) -> Result<i64, &'static str> {
        let prefix = self
            .prefix
            .ok_or("broker id above 1023 or broker epoch above 2^21: no unique producer ids")?;
        let counter = self.next.fetch_add(1, Ordering::Relaxed);
        if counter >= (1 << COUNTER_BITS) {
            return Err("this broker incarnation handed out 2^32 producer ids; restart it");
        }
        let id = prefix | counter;
        assert!(id < (1 << 63), "a producer id is a non-negative int64");
        Ok(i64::try_from(id).expect("below 2^63"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: ids from different brokers and incarnations never meet, and each is non-negative.
    #[test]
    fn ids_are_unique_across_brokers_and_incarnations() {
        let mut seen = std::collections::BTreeSet::new();
        for broker in [1, 2, 1023] {
            for epoch in [0, 1, (1 << 21) - 1] {
                let ids = ProducerIds::new(broker, epoch);
                for _ in 0..3 {
                    let id = ids.allocate().unwrap();
                    assert!(id >= 0);
                    assert!(seen.insert(id), "{id} handed out twice");
                }
            }
        }
        assert!(ProducerIds::new(1024, 0).allocate().is_err());
        assert!(ProducerIds::new(1, 1 << 21).allocate().is_err());
    }
}
