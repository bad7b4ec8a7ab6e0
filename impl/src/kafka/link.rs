//! How one Kafka connection speaks to a partition's event loop: as a client of the core, with
//! a client id of its own, the same `ClientRequest`s insync's client sends, and the replies
//! on a reply queue the event loop writes to.
//!
//! A Kafka connection is served one request at a time (as Kafka's brokers do: a connection is
//! muted until its response is written), so at most one core request is outstanding, except
//! produce requests that timed out here and whose late reply may still come. Replies are
//! therefore matched: a produce reply by its echoed `(producer_id, first_sequence)`, a consume
//! reply by kind (the core answers a consume in the step that reads it); anything else on the
//! queue is a late reply and is dropped.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::node::event_loop::Input;
use crate::protocol::{
    Acks, ClientId, ClientReply, ClientRequest, ConsumeResult, Control, ControlReply, Metadata,
    Offset, ProduceResult,
};

/// Kafka connections' client ids: the top bit set, then the listener's connection serial.
/// insync's own clients pick random 64-bit ids: one meets a live Kafka connection's id with
/// probability (live connections) / 2^64.
pub const KAFKA_CLIENT_ID_BASE: ClientId = 1 << 63;

/// Replies a connection's queue holds; one is outstanding at a time, the rest are late.
const REPLY_QUEUE_MAX: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The event loop stopped (the node is shutting down).
    #[error("the broker is stopping")]
    Gone,
    /// No answer within the request's timeout (acks=all waiting for the HW).
    #[error("no answer in time")]
    TimedOut,
}

/// One connection's registration with one partition's event loop.
pub struct CoreLink {
    client: ClientId,
    connection: u64,
    inputs: mpsc::Sender<Input>,
    replies: mpsc::Receiver<ClientReply>,
}

impl CoreLink {
    /// Registers connection `serial` with the event loop behind `inputs`.
    pub async fn open(inputs: mpsc::Sender<Input>, serial: u64) -> Result<CoreLink, LinkError> {
        let client = KAFKA_CLIENT_ID_BASE | (serial & !KAFKA_CLIENT_ID_BASE);
        let (sender, replies) = mpsc::channel(REPLY_QUEUE_MAX);
        let opened = Input::ClientOpened {
            client,
            connection: serial,
            replies: sender,
        };
        inputs.send(opened).await.map_err(|_| LinkError::Gone)?;
        Ok(CoreLink {
            client,
            connection: serial,
            inputs,
            replies,
        })
    }

    /// The node's view and addresses (`Control::Metadata`, open to anyone).
    pub async fn metadata(&self) -> Result<Metadata, LinkError> {
        let (reply, answer) = oneshot::channel();
        let request = Input::Control {
            request: Control::Metadata,
            operator: false,
            reply,
        };
        self.inputs
            .send(request)
            .await
            .map_err(|_| LinkError::Gone)?;
        match answer.await.map_err(|_| LinkError::Gone)? {
            ControlReply::Metadata(metadata) => Ok(metadata),
            other => panic!("the event loop answers Metadata with metadata, not {other:?}"),
        }
    }

    /// One batch; the core's answer, or `TimedOut` after `timeout`.
    pub async fn produce(
        &mut self,
        producer_id: u64,
        first_sequence: u32,
        values: Vec<Vec<u8>>,
        acks: Acks,
        timeout: Duration,
    ) -> Result<ProduceResult, LinkError> {
        let request = ClientRequest::Produce {
            producer_id,
            first_sequence,
            values,
            acks,
        };
        self.send(request).await?;
        let answer = async {
            loop {
                match self.replies.recv().await {
                    None => return Err(LinkError::Gone),
                    Some(ClientReply::ProduceResponse {
                        producer_id: echoed_id,
                        first_sequence: echoed_sequence,
                        result,
                    }) if echoed_id == producer_id && echoed_sequence == first_sequence => {
                        return Ok(result)
                    }
                    Some(_late) => continue,
                }
            }
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| LinkError::TimedOut)?
    }

    /// Committed records from `fetch_offset`, at most `max_records`, and the HW.
    pub async fn consume(
        &mut self,
        fetch_offset: Offset,
        max_records: u32,
    ) -> Result<ConsumeResult, LinkError> {
        let request = ClientRequest::Consume {
            fetch_offset,
            max_records,
        };
        self.send(request).await?;
        loop {
            match self.replies.recv().await {
                None => return Err(LinkError::Gone),
                Some(ClientReply::ConsumeResponse { result }) => return Ok(result),
                Some(ClientReply::ProduceResponse { .. }) => continue,
            }
        }
    }

    async fn send(&self, request: ClientRequest) -> Result<(), LinkError> {
        let input = Input::Client {
            client: self.client,
            request,
        };
        self.inputs.send(input).await.map_err(|_| LinkError::Gone)
    }

    /// Unregisters, so the event loop drops this connection's reply queue.
    pub async fn close(self) {
        let closed = Input::ClientClosed {
            client: self.client,
            connection: self.connection,
        };
        let _ = self.inputs.send(closed).await;
    }
}
