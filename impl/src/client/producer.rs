//! [`Producer`] and [`Consumer`]. See the module doc of `client`.

use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::connection::BrokerConnection;
use super::{random_id, ClientConfig, ClientError, Discovery};
use crate::core::{CONSUME_RECORDS_MAX, PRODUCE_RECORDS_MAX};
use crate::protocol::{
    Acks, ClientReply, ClientRequest, ConsumeResult, Offset, ProduceResult, Record,
};

/// Answers from a broker that belong to an earlier, abandoned request are skipped; at most this
/// many in a row before the connection is treated as broken.
const STALE_ANSWERS_MAX: u32 = 1024;

/// The producer's acknowledgement mode, as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceAcks {
    /// Fire and forget: sent as `acks=1`, the answer is not awaited and nothing is retried.
    Zero,
    One,
    All,
}

impl std::str::FromStr for ProduceAcks {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "0" => Ok(ProduceAcks::Zero),
            "1" => Ok(ProduceAcks::One),
            "all" | "-1" => Ok(ProduceAcks::All),
            other => Err(format!("acks must be 0, 1 or all, not {other:?}")),
        }
    }
}

enum Attempt {
    Done(Option<Offset>),
    /// `rejected`: the leader answered (keep the connection); otherwise find the leader again.
    Retry {
        reason: String,
        rejected: bool,
    },
    OutOfOrder {
        expected: u32,
    },
}

/// An idempotent producer. See the module doc of `client`.
#[derive(Debug)]
pub struct Producer {
    config: ClientConfig,
    discovery: Discovery,
    acks: ProduceAcks,
    client_id: u64,
    producer_id: u64,
    next_sequence: u32,
    connection: Option<BrokerConnection>,
}

impl Producer {
    pub fn new(config: ClientConfig, acks: ProduceAcks) -> Self {
        Producer {
            discovery: Discovery::new(&config),
            config,
            acks,
            client_id: random_id(),
            producer_id: random_id(),
            next_sequence: 0,
            connection: None,
        }
    }

    pub fn producer_id(&self) -> u64 {
        self.producer_id
    }

    /// Sends `values` in batches of at most `PRODUCE_RECORDS_MAX`, each waited for before the
    /// next; returns each batch's first offset (`None` with acks=0).
    pub async fn send(&mut self, values: Vec<Vec<u8>>) -> Result<Vec<Option<Offset>>, ClientError> {
        let mut offsets = Vec::new();
        let mut values = values.into_iter().peekable();
        while values.peek().is_some() {
            let batch: Vec<Vec<u8>> = values.by_ref().take(PRODUCE_RECORDS_MAX).collect();
            offsets.push(self.send_batch(batch).await?);
        }
        Ok(offsets)
    }

    /// Sends one batch and waits per the acks mode, retrying on `NotLeader`, lost connections,
    /// `Overloaded`, `NotEnoughReplicas` and `NotEnoughReplicasAfterAppend` until the delivery
    /// timeout. Every retry reuses the batch's sequences, so a retry after a lost (or refused)
    /// acknowledgement is recognised by the leader as a duplicate. If a new leader holds only a prefix of the batch (the old leader died
    /// mid-replication) it answers `OutOfOrderSequence { expected }` inside the batch, and only
    /// the missing suffix is sent again. When a batch finally fails the producer takes a new
    /// producer id, so its sequences are never reused for other records. Returns the offset of
    /// the first record the last attempt appended (`None` with acks=0).
    pub async fn send_batch(
        &mut self,
        values: Vec<Vec<u8>>,
    ) -> Result<Option<Offset>, ClientError> {
        assert!(!values.is_empty(), "an empty batch");
        assert!(
            values.len() <= PRODUCE_RECORDS_MAX,
            "batch above PRODUCE_RECORDS_MAX"
        );
        let first_sequence = self.next_sequence;
        self.next_sequence = first_sequence
            .checked_add(values.len() as u32)
            .expect("sequence space of one producer exhausted");
        let result = self.deliver(first_sequence, values).await;
        if result.is_err() {
            self.producer_id = random_id();
            self.next_sequence = 0;
        }
        result
    }

    async fn deliver(
        &mut self,
        mut first_sequence: u32,
        mut values: Vec<Vec<u8>>,
    ) -> Result<Option<Offset>, ClientError> {
        let acks = match self.acks {
            ProduceAcks::All => Acks::All,
            ProduceAcks::One | ProduceAcks::Zero => Acks::One,
        };
        let started = Instant::now();
        let mut backoff = self.config.retry_backoff;
        // Bounded: each attempt either returns, waits a back-off (bounded by the delivery
        // timeout), or shortens the batch.
        loop {
            let request = ClientRequest::Produce {
                producer_id: self.producer_id,
                first_sequence,
                values: values.clone(),
                acks,
            };
            let (reason, rejected) = match self.attempt(&request, first_sequence).await {
                Ok(Attempt::Done(offset)) => return Ok(offset),
                Ok(Attempt::Retry { reason, rejected }) => {
                    if !rejected {
                        // NotLeader: ask again where the leader is.
                        self.connection = None;
                    }
                    (reason, rejected)
                }
                Ok(Attempt::OutOfOrder { expected }) => {
                    let end = first_sequence + values.len() as u32;
                    if expected <= first_sequence || expected >= end {
                        return Err(ClientError::Rejected {
                            reason: format!(
                                "OutOfOrderSequence: the leader expects sequence {expected},                                  the batch is {first_sequence}..{end} (records acknowledged                                  earlier were lost, or acks=1 records never replicated)"
                            ),
                        });
                    }
                    debug!(
                        first_sequence,
                        expected, "leader holds a prefix; sending the rest"
                    );
                    values.drain(..(expected - first_sequence) as usize);
                    first_sequence = expected;
                    continue;
                }
                Err(error) => {
                    self.connection = None;
                    (error.to_string(), false)
                }
            };
            debug!(first_sequence, %reason, "produce attempt failed; retrying");
            if self.acks == ProduceAcks::Zero || started.elapsed() >= self.config.delivery_timeout {
                return Err(match rejected {
                    true => ClientError::Rejected { reason },
                    false => ClientError::DeliveryTimeout {
                        after: self.config.delivery_timeout,
                        last: reason,
                    },
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.retry_backoff_max);
        }
    }

    async fn attempt(
        &mut self,
        request: &ClientRequest,
        first_sequence: u32,
    ) -> Result<Attempt, ClientError> {
        let timeout = self.config.request_timeout;
        let (acks, own_producer_id) = (self.acks, self.producer_id);
        let connection = self.connect().await?;
        connection.send(request).await?;
        if acks == ProduceAcks::Zero {
            return Ok(Attempt::Done(None));
        }
        for _ in 0..STALE_ANSWERS_MAX {
            let answer = connection.receive(timeout).await?;
            let ClientReply::ProduceResponse {
                producer_id,
                first_sequence: answered,
                result,
            } = answer
            else {
                continue;
            };
            if producer_id != own_producer_id || answered != first_sequence {
                continue;
            }
            return Ok(match result {
                ProduceResult::Ok { offset } => Attempt::Done(Some(offset)),
                ProduceResult::NotLeader => Attempt::Retry {
                    reason: "NotLeader".into(),
                    rejected: false,
                },
                ProduceResult::NotEnoughReplicas => Attempt::Retry {
                    reason: "NotEnoughReplicas".into(),
                    rejected: true,
                },
                // Appended but not acknowledged: the retry is deduplicated, and answered
                // once the ISR is large enough again (a retriable error in Kafka too).
                ProduceResult::NotEnoughReplicasAfterAppend => Attempt::Retry {
                    reason: "NotEnoughReplicasAfterAppend".into(),
                    rejected: true,
                },
                ProduceResult::Overloaded => Attempt::Retry {
                    reason: "Overloaded".into(),
                    rejected: true,
                },
                ProduceResult::OutOfOrderSequence { expected } => Attempt::OutOfOrder { expected },
            });
        }
        Err(ClientError::Closed {
            address: connection.address.clone(),
        })
    }

    async fn connect(&mut self) -> Result<&mut BrokerConnection, ClientError> {
        if self.connection.is_none() {
            let (leader, address) = self.discovery.leader().await?;
            let connection = BrokerConnection::connect(
                leader,
                &address,
                &self.config.cluster_id,
                self.client_id,
                self.config.request_timeout,
            )
            .await?;
            debug!(leader, %address, "producer connected to the leader");
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Closes the connection after everything sent has been flushed (matters for acks=0).
    pub async fn close(mut self) {
        if let Some(connection) = self.connection.take() {
            connection.close().await;
        }
    }
}

/// Reads committed records from the leader, from a position on.
#[derive(Debug)]
pub struct Consumer {
    config: ClientConfig,
    discovery: Discovery,
    client_id: u64,
    position: Offset,
    connection: Option<BrokerConnection>,
}

impl Consumer {
    pub fn new(config: ClientConfig, from: Offset) -> Self {
        Consumer {
            discovery: Discovery::new(&config),
            config,
            client_id: random_id(),
            position: from,
            connection: None,
        }
    }

    /// The offset of the next record to read.
    pub fn position(&self) -> Offset {
        self.position
    }

    /// One read: the committed records at the position (possibly none). Retries `NotLeader`
    /// and broken connections until the delivery timeout.
    pub async fn poll(&mut self) -> Result<Vec<Record>, ClientError> {
        let started = Instant::now();
        let mut backoff = self.config.retry_backoff;
        loop {
            let reason = match self.attempt().await {
                Ok(Some(records)) => {
                    self.advance(&records);
                    return Ok(records);
                }
                Ok(None) => "NotLeader".to_owned(),
                Err(error) => error.to_string(),
            };
            self.connection = None;
            if started.elapsed() >= self.config.delivery_timeout {
                return Err(ClientError::DeliveryTimeout {
                    after: self.config.delivery_timeout,
                    last: reason,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.retry_backoff_max);
        }
    }

    /// Reads until a poll comes back empty (everything committed so far), at most `limit`.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<Record>, ClientError> {
        let mut all = Vec::new();
        while all.len() < limit {
            let records = self.poll().await?;
            if records.is_empty() {
                break;
            }
            all.extend(records);
        }
        Ok(all)
    }

    fn advance(&mut self, records: &[Record]) {
        for record in records {
            assert_eq!(
                record.offset, self.position,
                "records must continue the position"
            );
            self.position += 1;
        }
    }

    async fn attempt(&mut self) -> Result<Option<Vec<Record>>, ClientError> {
        let timeout = self.config.request_timeout;
        if self.connection.is_none() {
            let (leader, address) = self.discovery.leader().await?;
            let cluster_id = &self.config.cluster_id;
            let connection =
                BrokerConnection::connect(leader, &address, cluster_id, self.client_id, timeout)
                    .await?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("connected above");
        let request = ClientRequest::Consume {
            fetch_offset: self.position,
            max_records: CONSUME_RECORDS_MAX as u32,
        };
        connection.send(&request).await?;
        for _ in 0..STALE_ANSWERS_MAX {
            if let ClientReply::ConsumeResponse { result } = connection.receive(timeout).await? {
                return Ok(match result {
                    ConsumeResult::Ok { records, .. } => Some(records),
                    ConsumeResult::NotLeader => None,
                });
            }
        }
        Err(ClientError::Closed {
            address: connection.address.clone(),
        })
    }
}

/// Waits `duration`; for `consume --follow` between empty polls.
pub async fn idle(duration: Duration) {
    tokio::time::sleep(duration).await;
}
