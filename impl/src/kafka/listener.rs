//! The Kafka accept loop and per-connection tasks (mini-redis `src/server.rs`, as the insync
//! listener): at most [`KAFKA_CONNECTIONS_MAX`] connections; each runs in its own task,
//! reading one request, answering it, then reading the next. Whatever goes wrong on one
//! connection (garbage, an oversized frame, an unknown API) is logged and ends that
//! connection only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::connection::{FrameReader, FrameWriter};
use super::dispatch::{self, Dispatched, Session};
use super::partitions::PartitionTable;
use super::producer_ids::ProducerIds;
use crate::node::shutdown::Shutdown;
use crate::protocol::BrokerId;

/// Kafka connections served at once; the accept loop waits for a slot beyond that.
pub const KAFKA_CONNECTIONS_MAX: usize = 1024;
/// Longest back-off after repeated accept errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every Kafka connection of a broker shares.
#[derive(Debug)]
pub struct KafkaContext {
    /// This broker's id (Metadata's `controller_id` too: CreateTopics comes here, and is
    /// forwarded to the controller process).
    pub broker: BrokerId,
    pub cluster_id: String,
    /// The partition's replicas: every broker (replication factor = brokers).
    pub replicas: Vec<BrokerId>,
    /// Every broker's Kafka address as `(host, port)`.
    pub advertised: BTreeMap<BrokerId, (String, i32)>,
    /// The routes as last published (`node::broker_topics`); read with [`Self::routes`].
    pub partitions: tokio::sync::watch::Receiver<Arc<PartitionTable>>,
    /// Where CreateTopics is forwarded; `None`: no controller behind this listener.
    pub topics: Option<Arc<crate::node::broker_topics::BrokerTopics>>,
    pub producer_ids: ProducerIds,
    pub connection_serial: AtomicU64,
}

impl KafkaContext {
    /// The routes now (a snapshot: topics created later appear in the next one).
    pub fn routes(&self) -> Arc<PartitionTable> {
        self.partitions.borrow().clone()
    }
}

/// Accepts Kafka connections until shutdown, then waits for their tasks (which end at the
/// shutdown signal too).
pub async fn serve(listener: TcpListener, context: Arc<KafkaContext>, mut shutdown: Shutdown) {
    let slots = Arc::new(Semaphore::new(KAFKA_CONNECTIONS_MAX));
    let mut backoff = Duration::from_millis(10);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.recv() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.recv() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "kafka accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let context = context.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, address, context, shutdown).await;
            drop(permit);
        });
    }
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: TcpStream,
    address: SocketAddr,
    context: Arc<KafkaContext>,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let serial = context.connection_serial.fetch_add(1, Ordering::Relaxed);
    let (reader, writer) = stream.into_split();
    let (mut reader, mut writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let mut session = Session::new(context, serial);
    let outcome: Result<(), String> = loop {
        let frame = tokio::select! {
            _ = shutdown.recv() => break Ok(()),
            frame = reader.read() => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error.to_string()),
        };
        let dispatched = tokio::select! {
            _ = shutdown.recv() => break Ok(()),
            dispatched = dispatch::dispatch(frame, &mut session) => dispatched,
        };
        match dispatched {
            Dispatched::Respond(bytes) => {
                if let Err(error) = writer.write(&bytes).await {
                    break Err(error.to_string());
                }
            }
            Dispatched::NoResponse => {}
            Dispatched::Close(reason) => break Err(reason),
        }
    };
    session.close().await;
    match outcome {
        Ok(()) => debug!(%address, "kafka connection closed"),
        Err(reason) => warn!(%address, %reason, "kafka connection closed"),
    }
}
