//! The client library: find the partition's leader from any bootstrap node, produce with an
//! idempotent producer, consume committed records.
//!
//! - [`ControlClient`]: the control channel (`Inspect`, `Metadata`, `Barrier`, timers).
//! - [`Producer`]: a producer id and per-record sequence numbers, as Kafka's idempotent
//!   producer; a batch keeps its sequences across retries, so a retry after a lost
//!   acknowledgement is recognised by the leader and never appends a record twice. One batch
//!   is in flight at a time, which keeps the log in send order across retries.
//! - [`Consumer`]: reads from the leader, which serves only records below its high watermark.
//!
//! `acks=0` maps onto the protocol as a produce with `acks=1` whose answer the client does not
//! wait for (nor retry): fire-and-forget, as in Kafka.

mod connection;
mod control;
mod discovery;
mod producer;

pub use control::{ControlClient, CONTROL_TIMEOUT};
pub use discovery::Discovery;
pub use producer::{idle, Consumer, ProduceAcks, Producer};

use std::time::Duration;

use crate::protocol::{ControlRefusal, ControlReply};
use crate::wire::WireError;

/// How a client behaves; the defaults suit an interactive command.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Nodes (brokers or the controller) to ask where the leader is.
    pub bootstrap: Vec<String>,
    pub cluster_id: String,
    /// One request's answer is awaited this long before the connection is abandoned.
    pub request_timeout: Duration,
    /// First delay between retries; doubles up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// A batch that is still not acknowledged after this long fails.
    pub delivery_timeout: Duration,
}

impl ClientConfig {
    pub fn new(bootstrap: Vec<String>, cluster_id: impl Into<String>) -> Self {
        ClientConfig {
            bootstrap,
            cluster_id: cluster_id.into(),
            request_timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(20),
            retry_backoff_max: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connection to {address} failed: {source}")]
    Wire {
        address: String,
        #[source]
        source: WireError,
    },
    #[error("{address} closed the connection")]
    Closed { address: String },
    #[error("timed out {what}")]
    Timeout { what: String },
    #[error("{address} refused: {refusal}")]
    Refused {
        address: String,
        refusal: ControlRefusal,
    },
    #[error("{address} answered unexpectedly: {reply}")]
    Unexpected { address: String, reply: String },
    #[error("no bootstrap node knows a leader: {reason}")]
    NoLeader { reason: String },
    #[error("the leader rejected the batch: {reason}")]
    Rejected { reason: String },
    #[error("batch not acknowledged within {after:?}; last error: {last}")]
    DeliveryTimeout { after: Duration, last: String },
}

impl ClientError {
    fn connect(address: &str, source: std::io::Error) -> Self {
        ClientError::Connect {
            address: address.to_owned(),
            source,
        }
    }

    fn wire(address: &str, source: WireError) -> Self {
        ClientError::Wire {
            address: address.to_owned(),
            source,
        }
    }

    fn unexpected(address: &str, reply: ControlReply) -> Self {
        if let ControlReply::Refused(refusal) = reply {
            let address = address.to_owned();
            return ClientError::Refused { address, refusal };
        }
        ClientError::Unexpected {
            address: address.to_owned(),
            reply: format!("{reply:?}"),
        }
    }
}

/// A random 64-bit id (client and producer ids) without a randomness crate: the standard
/// library's randomly keyed hasher over the time, the process id and a counter.
pub fn random_id() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}
