//! The event loop: the one task that owns a node's protocol core and processes its inputs one
//! at a time, in arrival order.
//!
//! Everything that changes protocol state passes through here: messages read by connection
//! tasks, control requests, and (in real time only) clock ticks. Because inputs are handled
//! strictly one after another, a node's behaviour is a function of its input sequence, which is
//! what makes stepped mode deterministic and the `Barrier` exact: the loop counts processed
//! frames per inbound channel and emitted frames per outbound channel, and answers a barrier as
//! soon as the processed counts reach what the harness says it delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::peers::PeerHandle;
use super::shutdown::{Shutdown, ShutdownTrigger};
use super::NodeError;
use crate::protocol::{Control, ControlReply, Message, Metadata, NodeId, Snapshot, Timer};

/// Bound of the queue from connection tasks into the event loop. A full queue slows readers
/// down (TCP back-pressure) rather than growing memory.
pub const INPUT_QUEUE_MAX: usize = 4096;

/// Bound of one client connection's reply queue; replies beyond it are dropped and counted.
pub const CLIENT_QUEUE_MAX: usize = 1024;

/// Pending `Barrier` requests a node holds at once; more are refused by closing the reply.
pub const BARRIERS_PENDING_MAX: usize = 64;

/// Real-time mode: how often the role's clocks are checked.
pub const TICK: Duration = Duration::from_millis(10);

/// Messages the core asks to send, in order.
pub type Outgoing = Vec<(NodeId, Message)>;

/// One protocol role (broker or controller) as the event loop drives it. Implementations wrap
/// the sans-I/O core and keep the real-time clocks; every method runs on the event loop task.
pub trait Role: Send + 'static {
    /// Messages to send at start (e.g. a follower's first `Fetch`, `RegisterBroker`).
    fn start(&mut self) -> Result<Outgoing, NodeError>;
    /// One protocol message from `from`. Anything that must be durable before the answers
    /// leave (controller state, fsync=always appends) is durable when this returns.
    fn step(&mut self, from: NodeId, message: Message) -> Result<Outgoing, NodeError>;
    /// Fires `timer`; `Ok(None)` when it is not armed.
    fn fire(&mut self, timer: &Timer) -> Result<Option<Outgoing>, NodeError>;
    fn snapshot(&self) -> Result<Snapshot, NodeError>;
    fn metadata(&self) -> Metadata;
    /// Real-time mode only: the clock moved to `now`; fire what is due.
    fn tick(&mut self, now: Instant) -> Result<Outgoing, NodeError>;
    /// Graceful stop: make durable what should be (e.g. flush a lazy log).
    fn close(&mut self) -> Result<(), NodeError>;
}

/// Inputs to the event loop.
#[derive(Debug)]
pub enum Input {
    /// A protocol frame read from an inbound connection.
    Message {
        from: NodeId,
        message: Message,
    },
    /// A client connected; replies to `NodeId::Client(client)` go to `replies`.
    ClientOpened {
        client: u64,
        connection: u64,
        replies: mpsc::Sender<Message>,
    },
    ClientClosed {
        client: u64,
        connection: u64,
    },
    /// A control request; the reply goes back on `reply`.
    Control {
        request: Control,
        reply: oneshot::Sender<ControlReply>,
    },
}

/// Frame counters per channel, as `Barrier` reports them.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub received: BTreeMap<NodeId, u64>,
    pub emitted: BTreeMap<NodeId, u64>,
    pub dropped: BTreeMap<NodeId, u64>,
}

struct ClientChannel {
    connection: u64,
    replies: mpsc::Sender<Message>,
}

/// Where outbound frames go: one bounded queue per peer, one per connected client.
pub struct Outbound {
    peers: BTreeMap<NodeId, PeerHandle>,
    clients: BTreeMap<u64, ClientChannel>,
    counters: Counters,
}

impl Outbound {
    pub fn new(peers: BTreeMap<NodeId, PeerHandle>) -> Self {
        Outbound {
            peers,
            clients: BTreeMap::new(),
            counters: Counters::default(),
        }
    }

    /// Hands one frame to its channel. Counted as emitted always; as dropped too when the
    /// channel cannot take it (see `ControlReply::Barrier`).
    fn send(&mut self, target: NodeId, message: Message) {
        *self.counters.emitted.entry(target).or_insert(0) += 1;
        let accepted = match target {
            NodeId::Client(client) => match self.clients.get(&client) {
                Some(channel) => channel.replies.try_send(message).is_ok(),
                None => false,
            },
            peer => match self.peers.get(&peer) {
                Some(handle) => handle.try_send(message),
                None => {
                    warn!(?peer, "no address configured for this peer; frame dropped");
                    false
                }
            },
        };
        if !accepted {
            debug!(?target, "outbound frame dropped");
            *self.counters.dropped.entry(target).or_insert(0) += 1;
        }
    }

    fn send_all(&mut self, outgoing: Outgoing) {
        for (target, message) in outgoing {
            self.send(target, message);
        }
    }
}

struct PendingBarrier {
    received: BTreeMap<NodeId, u64>,
    reply: oneshot::Sender<ControlReply>,
}

/// The event loop of one node. See the module doc.
pub struct EventLoop<R: Role> {
    role: R,
    inputs: mpsc::Receiver<Input>,
    outbound: Outbound,
    barriers: Vec<PendingBarrier>,
    stepped: bool,
    shutdown_trigger: ShutdownTrigger,
}

impl<R: Role> EventLoop<R> {
    pub fn new(
        role: R,
        inputs: mpsc::Receiver<Input>,
        outbound: Outbound,
        stepped: bool,
        shutdown_trigger: ShutdownTrigger,
    ) -> Self {
        EventLoop {
            role,
            inputs,
            outbound,
            barriers: Vec::new(),
            stepped,
            shutdown_trigger,
        }
    }

    /// Runs until shutdown. An error (storage I/O) is fatal for the process.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), NodeError> {
        let result = self.run_inner(&mut shutdown).await;
        // Whatever happened, stop the other tasks of this node too.
        self.shutdown_trigger.trigger();
        let closed = self.role.close();
        result.and(closed)
    }

    async fn run_inner(&mut self, shutdown: &mut Shutdown) -> Result<(), NodeError> {
        let start = self.role.start()?;
        self.outbound.send_all(start);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // Biased, clock before inputs: under a steady stream of inputs the clock must
            // still run, or heartbeats would starve and the controller would fence a busy
            // broker. A due tick is cheap; inputs wait at most one tick's work.
            tokio::select! {
                biased;
                _ = shutdown.recv() => return Ok(()),
                now = ticker.tick(), if !self.stepped => {
                    let outgoing = self.role.tick(now)?;
                    self.outbound.send_all(outgoing);
                }
                input = self.inputs.recv() => match input {
                    Some(input) => self.handle(input)?,
                    None => return Ok(()),
                },
            }
        }
    }

    fn handle(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Message { from, message } => {
                let outgoing = self.role.step(from, message)?;
                *self.outbound.counters.received.entry(from).or_insert(0) += 1;
                self.outbound.send_all(outgoing);
                self.answer_barriers();
            }
            Input::ClientOpened {
                client,
                connection,
                replies,
            } => {
                let channel = ClientChannel {
                    connection,
                    replies,
                };
                self.outbound.clients.insert(client, channel);
            }
            Input::ClientClosed { client, connection } => {
                let current = self.outbound.clients.get(&client);
                if current.is_some_and(|channel| channel.connection == connection) {
                    self.outbound.clients.remove(&client);
                }
            }
            Input::Control { request, reply } => self.control(request, reply)?,
        }
        Ok(())
    }

    fn control(
        &mut self,
        request: Control,
        reply: oneshot::Sender<ControlReply>,
    ) -> Result<(), NodeError> {
        let answer = match request {
            Control::Inspect => ControlReply::Inspect(self.role.snapshot()?),
            Control::Metadata => ControlReply::Metadata(self.role.metadata()),
            Control::FireTimer(timer) => match self.role.fire(&timer)? {
                Some(outgoing) => {
                    self.outbound.send_all(outgoing);
                    ControlReply::TimerFired
                }
                None => ControlReply::TimerNotArmed(timer),
            },
            Control::Barrier { received } => {
                if self.barriers.len() >= BARRIERS_PENDING_MAX {
                    warn!("too many pending barriers; refusing one");
                    return Ok(());
                }
                self.barriers.push(PendingBarrier { received, reply });
                self.answer_barriers();
                return Ok(());
            }
            Control::Shutdown => {
                info!("shutdown requested on the control channel");
                self.shutdown_trigger.trigger();
                ControlReply::ShuttingDown
            }
        };
        // The requester may have gone; nothing to do then.
        let _ = reply.send(answer);
        Ok(())
    }

    fn answer_barriers(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        let counters = &self.outbound.counters;
        let reached = |barrier: &PendingBarrier| {
            barrier.received.iter().all(|(source, count)| {
                counters.received.get(source).copied().unwrap_or(0) >= *count
            })
        };
        let (ready, waiting): (Vec<_>, Vec<_>) = self.barriers.drain(..).partition(reached);
        self.barriers = waiting;
        for barrier in ready {
            let _ = barrier.reply.send(ControlReply::Barrier {
                emitted: counters.emitted.clone(),
                dropped: counters.dropped.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::shutdown::shutdown_pair;
    use crate::protocol::{BrokerSnapshot, FetchState};

    /// Answers every message with a `RegisterBroker` to broker 9, which has no channel.
    struct EchoRole;

    impl Role for EchoRole {
        fn start(&mut self) -> Result<Outgoing, NodeError> {
            Ok(Vec::new())
        }
        fn step(&mut self, _from: NodeId, _message: Message) -> Result<Outgoing, NodeError> {
            Ok(vec![(
                NodeId::Broker(9),
                Message::RegisterBroker { broker_epoch: 0 },
            )])
        }
        fn fire(&mut self, _timer: &Timer) -> Result<Option<Outgoing>, NodeError> {
            Ok(None)
        }
        fn snapshot(&self) -> Result<Snapshot, NodeError> {
            Ok(Snapshot::Broker(BrokerSnapshot {
                id: 1,
                broker_epoch: 0,
                registered: true,
                view: None,
                log: Vec::new(),
                log_end_offset: 0,
                hw: 0,
                durable_end_offset: 0,
                hw_checkpoint: 0,
                leader_epoch_start_offset: None,
                replicas: BTreeMap::new(),
                pending_isr: None,
                waiting: Vec::new(),
                fetch_state: FetchState::Idle,
                armed_timers: Default::default(),
            }))
        }
        fn metadata(&self) -> Metadata {
            Metadata {
                node: NodeId::Broker(1),
                view: None,
                brokers: BTreeMap::new(),
                controller: None,
            }
        }
        fn tick(&mut self, _now: Instant) -> Result<Outgoing, NodeError> {
            panic!("a stepped node has no clock");
        }
        fn close(&mut self) -> Result<(), NodeError> {
            Ok(())
        }
    }

    async fn control(
        inputs: &mpsc::Sender<Input>,
        request: Control,
    ) -> oneshot::Receiver<ControlReply> {
        let (reply, answer) = oneshot::channel();
        inputs
            .send(Input::Control { request, reply })
            .await
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn barrier_waits_for_processed_frames_and_counts_drops() {
        let (trigger, shutdown) = shutdown_pair();
        let (inputs, receiver) = mpsc::channel(16);
        let event_loop = EventLoop::new(
            EchoRole,
            receiver,
            Outbound::new(BTreeMap::new()),
            true,
            trigger,
        );
        let running = tokio::spawn(event_loop.run(shutdown));

        let received = BTreeMap::from([(NodeId::Broker(2), 1)]);
        let mut barrier = control(&inputs, Control::Barrier { received }).await;
        let fired = control(&inputs, Control::FireTimer(Timer::Lag(3))).await;
        assert_eq!(
            fired.await.unwrap(),
            ControlReply::TimerNotArmed(Timer::Lag(3))
        );
        assert!(
            barrier.try_recv().is_err(),
            "nothing from broker 2 processed yet"
        );

        let message = Message::RegisterBroker { broker_epoch: 1 };
        inputs
            .send(Input::Message {
                from: NodeId::Broker(2),
                message,
            })
            .await
            .unwrap();
        let one = BTreeMap::from([(NodeId::Broker(9), 1)]);
        let expected = ControlReply::Barrier {
            emitted: one.clone(),
            dropped: one,
        };
        assert_eq!(
            barrier.await.unwrap(),
            expected,
            "emitted and dropped: no channel to 9"
        );

        let stopped = control(&inputs, Control::Shutdown).await;
        assert_eq!(stopped.await.unwrap(), ControlReply::ShuttingDown);
        running.await.unwrap().unwrap();
    }
}
