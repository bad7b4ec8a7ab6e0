//! The event loop: the one task that owns a node's protocol core and processes its inputs one
//! at a time, in arrival order.
//!
//! Everything that changes protocol state passes through here: messages read by connection
//! tasks, control requests, and (in real time only) timers whose deadline passed. Because
//! inputs are handled strictly one after another, a node's behaviour is a function of its input
//! sequence, which is what makes stepped mode deterministic and the `Barrier` exact: the loop
//! counts processed frames per inbound channel and emitted frames per outbound channel, and
//! answers a barrier as soon as the processed counts reach what the harness says it delivered.
//!
//! Timers (docs/protocol.md §6): the core arms, restarts and cancels them in its effects; in
//! real time the loop keeps one deadline per armed timer (`Clock`, durations from the node's
//! `Timing`) and fires each when it passes. That is all the loop knows of time: it never looks
//! at a message to decide anything. In stepped mode there is no `Clock` and only the control
//! channel fires timers.
//!
//! Control requests are admitted here (docs/runtime.md, "Who can do what"): `Metadata` from
//! anyone who passed the handshake; `Inspect` and `Shutdown` from the operator (a control
//! connection that presented the control token); `FireTimer` and `Barrier` from the operator
//! of a stepped node only, since in real time the node's own clocks decide when timers fire.
//! `Topics` and `CreateTopic` never get here on the controller process's slot 0, whose
//! listener hands them to the topic table (`controller_topics`); any loop that is asked has
//! no table and refuses them (`NoTopicTable`). A refused request is answered
//! `ControlReply::Refused` and logged; the connection and the node carry on.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::Timing;
use super::peers::PeerHandle;
use super::shutdown::{Shutdown, ShutdownTrigger};
use super::NodeError;
use crate::core::{Effects, Write};
use crate::protocol::{
    ClientId, ClientReply, ClientRequest, Control, ControlRefusal, ControlReply, Metadata, NodeId,
    Outgoing, PeerId, PeerMessage, Snapshot, Timer,
};
use crate::trace_log::{self, NodeState, TraceHeader, TraceLog};

/// Bound of the queue from connection tasks into the event loop. A full queue slows readers
/// down (TCP back-pressure) rather than growing memory.
pub const INPUT_QUEUE_MAX: usize = 4096;

/// Bound of one client connection's reply queue; replies beyond it are dropped and counted.
pub const CLIENT_QUEUE_MAX: usize = 1024;

/// Pending `Barrier` requests a node holds at once; more are refused by closing the reply.
pub const BARRIERS_PENDING_MAX: usize = 64;

/// What one input asks of the runtime once the role has made durable what must be: the
/// messages to send, in order, and the core's timer changes (`Effects::arm`, `cancel`).
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub send: Vec<Outgoing>,
    pub arm: Vec<Timer>,
    pub cancel: Vec<Timer>,
    /// The writes the role applied for this input, kept for the trace log only.
    pub writes: Vec<Write>,
}

impl Output {
    /// The runtime's part of a core's effects; the role has handled `persist_state` already.
    pub fn of(effects: Effects) -> Self {
        Output {
            send: effects.send,
            arm: effects.arm,
            cancel: effects.cancel,
            writes: effects.writes,
        }
    }
}

/// One protocol role (broker or controller) as the event loop drives it. Implementations wrap
/// the sans-I/O core and its storage; every method runs on the event loop task.
pub trait Role: Send + 'static {
    /// The effects of starting (e.g. a follower's first `Fetch`, `RegisterBroker`, the timers
    /// the core armed).
    fn start(&mut self) -> Result<Output, NodeError>;
    /// One protocol message from `from`. The core's writes are applied when this returns, and
    /// whatever must be durable before the answers leave (`Effects::must_sync`: the
    /// controller's state, a broker's truncation, flush or HW checkpoint) is durable.
    fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> Result<Output, NodeError>;
    /// One request from a client connection (only nodes that admit clients receive any), under
    /// the same rule.
    fn step_client(
        &mut self,
        client: ClientId,
        request: ClientRequest,
    ) -> Result<Output, NodeError>;
    /// Fires `timer`; `Ok(None)` when it is not armed.
    fn fire(&mut self, timer: &Timer) -> Result<Option<Output>, NodeError>;
    fn snapshot(&self) -> Result<Snapshot, NodeError>;
    fn metadata(&self) -> Metadata;
    /// The state after an input, for the trace log: `with_log` only at a start (what recovery
    /// found); otherwise without the log, which the validator rebuilds from the writes.
    fn trace_state(&self, with_log: bool) -> Result<NodeState, NodeError>;
    /// Graceful stop: make durable what should be (e.g. flush a lazy log).
    fn close(&mut self) -> Result<(), NodeError>;
}

/// Inputs to the event loop.
#[derive(Debug)]
pub enum Input {
    /// A protocol frame read from an inbound connection.
    Peer {
        from: PeerId,
        message: PeerMessage,
    },
    /// A request read from a client connection.
    Client {
        client: ClientId,
        request: ClientRequest,
    },
    /// A client connected; replies to `NodeId::Client(client)` go to `replies`.
    ClientOpened {
        client: u64,
        connection: u64,
        replies: mpsc::Sender<ClientReply>,
    },
    ClientClosed {
        client: u64,
        connection: u64,
    },
    /// A control request; the reply goes back on `reply`. `operator`: the connection
    /// presented the control token.
    Control {
        request: Control,
        operator: bool,
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
    replies: mpsc::Sender<ClientReply>,
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
    fn send(&mut self, outgoing: Outgoing) {
        let target = outgoing.target();
        *self.counters.emitted.entry(target).or_insert(0) += 1;
        let accepted = match outgoing {
            Outgoing::Client(client, reply) => match self.clients.get(&client) {
                Some(channel) => channel.replies.try_send(reply).is_ok(),
                None => false,
            },
            Outgoing::Peer(peer, message) => match self.peers.get(&target) {
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

    fn send_all(&mut self, outgoing: Vec<Outgoing>) {
        for frame in outgoing {
            self.send(frame);
        }
    }
}

struct PendingBarrier {
    received: BTreeMap<NodeId, u64>,
    reply: oneshot::Sender<ControlReply>,
}

/// Real time: one deadline per armed timer. Bounded by the core's armed set (a handful of
/// timer kinds, at most one per broker id each).
struct Clock {
    timing: Timing,
    deadlines: BTreeMap<Timer, Instant>,
}

impl Clock {
    /// Cancelled timers lose their deadline; armed (or restarted) ones get a new one from now.
    fn apply(&mut self, arm: &[Timer], cancel: &[Timer], now: Instant) {
        for timer in cancel {
            self.deadlines.remove(timer);
        }
        for timer in arm {
            match self.timing.duration(timer) {
                Some(duration) => self.deadlines.insert(timer.clone(), now + duration),
                None => self.deadlines.remove(timer),
            };
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// The earliest timer whose deadline is at or before `now`, taken off the clock.
    fn take_next_due(&mut self, now: Instant) -> Option<Timer> {
        let due = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now);
        let (timer, _) = due.min_by_key(|(timer, deadline)| (**deadline, (*timer).clone()))?;
        let timer = timer.clone();
        self.deadlines.remove(&timer);
        Some(timer)
    }
}

/// The event loop of one node. See the module doc.
pub struct EventLoop<R: Role> {
    role: R,
    inputs: mpsc::Receiver<Input>,
    outbound: Outbound,
    barriers: Vec<PendingBarrier>,
    /// Absent in stepped mode: nothing fires by itself.
    clock: Option<Clock>,
    shutdown_trigger: ShutdownTrigger,
    /// `--trace-log`: one record per input (`trace_log`), and the header of this incarnation.
    trace: Option<(TraceLog, TraceHeader)>,
}

impl<R: Role> EventLoop<R> {
    /// `timing` is `None` in stepped mode.
    pub fn new(
        role: R,
        inputs: mpsc::Receiver<Input>,
        outbound: Outbound,
        timing: Option<Timing>,
        shutdown_trigger: ShutdownTrigger,
    ) -> Self {
        EventLoop {
            role,
            inputs,
            outbound,
            barriers: Vec::new(),
            clock: timing.map(|timing| Clock {
                timing,
                deadlines: BTreeMap::new(),
            }),
            shutdown_trigger,
            trace: None,
        }
    }

    /// Records every input this loop hands the core in `trace`.
    pub fn with_trace(mut self, trace: TraceLog, header: TraceHeader) -> Self {
        self.trace = Some((trace, header));
        self
    }

    /// The one recording call per core input: what it sent and wrote, and the state after.
    fn record(
        &mut self,
        input: Option<trace_log::Input>,
        output: &Output,
    ) -> Result<(), NodeError> {
        let (Some((trace, _)), Some(input)) = (self.trace.as_mut(), input) else {
            return Ok(());
        };
        let with_log = matches!(input, trace_log::Input::Start(_));
        let state = self.role.trace_state(with_log)?;
        trace.record(input, &output.send, &output.writes, Some(state));
        Ok(())
    }

    /// Runs until shutdown. An error (storage I/O) is fatal for the process.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), NodeError> {
        let result = self.run_inner(&mut shutdown).await;
        // Whatever happened, stop the other tasks of this node too.
        self.shutdown_trigger.trigger();
        // A clean stop closes the role (a broker flushes and checkpoints). After an error the
        // storage is not where the core expects it (a write failed half-way, the disk full):
        // stop as a crash does, with the error, and let recovery sort the files out.
        let result = result.and_then(|()| self.role.close());
        if let Some((trace, _)) = self.trace.take() {
            // Only a clean stop is recorded as one; an error ends the log like a crash.
            match &result {
                Ok(()) => trace.close(self.role.trace_state(false).ok()),
                Err(_) => drop(trace),
            }
        }
        result
    }

    async fn run_inner(&mut self, shutdown: &mut Shutdown) -> Result<(), NodeError> {
        let start = self.role.start()?;
        let input = self
            .trace
            .as_ref()
            .map(|(_, header)| trace_log::Input::Start(header.clone()));
        self.record(input, &start)?;
        // The start is in the trace log before anything it asked for happens
        // (`trace_log::writer`: an incarnation with no `Start` sent nothing).
        let written = self
            .trace
            .as_mut()
            .map(|(trace, _)| trace.hand_over_written());
        if let Some(written) = written {
            // An error: the writer stopped (logged there); the node runs on unrecorded.
            let _ = written.await;
        }
        self.perform(start);
        loop {
            self.hand_over_if_due();
            let next_deadline = self.clock.as_ref().and_then(Clock::next_deadline);
            let deadline = next_deadline.unwrap_or_else(Instant::now);
            let trace_deadline = self
                .trace
                .as_ref()
                .and_then(|(t, _)| t.hand_over_deadline());
            let trace_due = trace_deadline.map_or_else(Instant::now, Instant::from_std);
            // Biased, timers before inputs: under a steady stream of inputs the timers must
            // still fire, or heartbeats would starve and the controller would fence a busy
            // broker. Inputs wait at most for the timers already due.
            tokio::select! {
                biased;
                _ = shutdown.recv() => return Ok(()),
                _ = tokio::time::sleep_until(deadline), if next_deadline.is_some() => {
                    self.fire_due()?;
                }
                // The trace recorder's batch has waited long enough (`trace_log::writer`).
                _ = tokio::time::sleep_until(trace_due), if trace_deadline.is_some() => {
                    if let Some((trace, _)) = self.trace.as_mut() {
                        trace.hand_over();
                    }
                }
                input = self.inputs.recv() => match input {
                    Some(input) => self.handle(input)?,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Hands the trace recorder's batch over once it has waited long enough. Checked on every
    /// round, not only by the `select!` branch below: that branch comes after the timers', so
    /// a node whose timers are due on every round (a loaded machine, test-speed clocks) would
    /// keep its records in the batch for as long, and a SIGKILL would lose them all.
    fn hand_over_if_due(&mut self) {
        let Some((trace, _)) = self.trace.as_mut() else {
            return;
        };
        if trace
            .hand_over_deadline()
            .is_some_and(|deadline| deadline <= std::time::Instant::now())
        {
            trace.hand_over();
        }
    }

    /// Fires every timer whose deadline has passed, earliest first, one at a time: firing one
    /// may cancel or restart another that was due as well (a leader's `Lag(f)` firing cancels
    /// the other followers' `Lag` while its `AlterPartition` is in flight), and a cancelled
    /// timer must not fire. `insync chaos` found the leader firing a `Lag` cancelled so.
    fn fire_due(&mut self) -> Result<(), NodeError> {
        // Bounded: each round takes a timer off the clock, and a timer it re-arms is due only
        // after its (positive) duration.
        let due_max = self.clock.as_ref().map_or(0, |clock| clock.deadlines.len());
        for _ in 0..due_max {
            let Some(clock) = self.clock.as_mut() else {
                return Ok(());
            };
            let Some(timer) = clock.take_next_due(Instant::now()) else {
                return Ok(());
            };
            debug!(?timer, "deadline passed; firing");
            match self.role.fire(&timer)? {
                Some(output) => {
                    self.record(self.trace_timer(&timer), &output)?;
                    self.perform(output)
                }
                // The clock mirrors the core's armed set through every output, so this is a
                // bookkeeping error; the deadline is gone, which is the safe side.
                None => debug_assert!(false, "{timer:?} was on the clock but not armed"),
            }
        }
        Ok(())
    }

    /// Hands the messages on and moves the deadlines.
    fn perform(&mut self, output: Output) {
        self.outbound.send_all(output.send);
        if let Some(clock) = self.clock.as_mut() {
            clock.apply(&output.arm, &output.cancel, Instant::now());
        }
    }

    /// One protocol frame from `from` was handled: count it, perform what it asked.
    fn received(&mut self, from: NodeId, output: Output) {
        *self.outbound.counters.received.entry(from).or_insert(0) += 1;
        self.perform(output);
        self.answer_barriers();
    }

    fn handle(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Peer { from, message } => {
                let traced = self.trace_input(NodeId::from(from), || {
                    trace_log::TracedMessage::of_peer(&message)
                });
                let output = self.role.step_peer(from, message)?;
                self.record(traced, &output)?;
                self.received(NodeId::from(from), output);
            }
            Input::Client { client, request } => {
                let traced = self.trace_input(NodeId::Client(client), || {
                    trace_log::TracedMessage::of_request(&request)
                });
                let output = self.role.step_client(client, request)?;
                self.record(traced, &output)?;
                self.received(NodeId::Client(client), output);
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
            Input::Control {
                request,
                operator,
                reply,
            } => match self.admit(&request, operator) {
                Ok(()) => self.control(request, reply)?,
                Err(refusal) => {
                    warn!(%refusal, operator, "control request refused");
                    let _ = reply.send(ControlReply::Refused(refusal));
                }
            },
        }
        Ok(())
    }

    /// Who can do what; see the module doc.
    fn admit(&self, request: &Control, operator: bool) -> Result<(), ControlRefusal> {
        let name = || request_name(request).to_owned();
        match request {
            Control::Metadata => Ok(()),
            // The controller process's listener answers these before they reach a loop
            // (`listener::serve_control`); any loop asked has no table.
            Control::Topics | Control::CreateTopic { .. } => {
                Err(ControlRefusal::NoTopicTable { request: name() })
            }
            Control::FireTimer(_) | Control::Barrier { .. } if self.clock.is_some() => {
                Err(ControlRefusal::SteppedOnly { request: name() })
            }
            _ if !operator => Err(ControlRefusal::OperatorOnly { request: name() }),
            Control::Inspect
            | Control::FireTimer(_)
            | Control::Barrier { .. }
            | Control::Shutdown => Ok(()),
        }
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
                Some(output) => {
                    self.record(self.trace_timer(&timer), &output)?;
                    self.perform(output);
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
            Control::Topics | Control::CreateTopic { .. } => {
                unreachable!("admit refuses {}", request_name(&request))
            }
        };
        // The requester may have gone; nothing to do then.
        let _ = reply.send(answer);
        Ok(())
    }

    /// The input record of a message, built only when recording (payloads left out).
    fn trace_input(
        &mut self,
        from: NodeId,
        message: impl FnOnce() -> trace_log::TracedMessage,
    ) -> Option<trace_log::Input> {
        let (trace, _) = self.trace.as_mut()?;
        Some(trace.message_input(from, message()))
    }

    fn trace_timer(&self, timer: &Timer) -> Option<trace_log::Input> {
        self.trace
            .as_ref()
            .map(|_| trace_log::Input::Timer(timer.clone()))
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

fn request_name(request: &Control) -> &'static str {
    match request {
        Control::Inspect => "Inspect",
        Control::FireTimer(_) => "FireTimer",
        Control::Barrier { .. } => "Barrier",
        Control::Metadata => "Metadata",
        Control::Shutdown => "Shutdown",
        Control::Topics => "Topics",
        Control::CreateTopic { .. } => "CreateTopic",
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
        fn start(&mut self) -> Result<Output, NodeError> {
            Ok(Output::default())
        }
        fn step_peer(&mut self, _from: PeerId, _message: PeerMessage) -> Result<Output, NodeError> {
            Ok(Output {
                send: vec![Outgoing::Peer(
                    PeerId::Broker(9),
                    PeerMessage::RegisterBroker { broker_epoch: 0 },
                )],
                ..Output::default()
            })
        }
        fn step_client(
            &mut self,
            _client: ClientId,
            _request: ClientRequest,
        ) -> Result<Output, NodeError> {
            Ok(Output::default())
        }
        fn fire(&mut self, _timer: &Timer) -> Result<Option<Output>, NodeError> {
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
                timers_fired: Default::default(),
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
        fn trace_state(&self, _with_log: bool) -> Result<NodeState, NodeError> {
            match self.snapshot()? {
                Snapshot::Broker(snapshot) => Ok(NodeState::Broker(Box::new(snapshot))),
                Snapshot::Controller(snapshot) => Ok(NodeState::Controller(snapshot)),
            }
        }
        fn close(&mut self) -> Result<(), NodeError> {
            Ok(())
        }
    }

    async fn control(
        inputs: &mpsc::Sender<Input>,
        request: Control,
    ) -> oneshot::Receiver<ControlReply> {
        control_as(inputs, request, true).await
    }

    async fn control_as(
        inputs: &mpsc::Sender<Input>,
        request: Control,
        operator: bool,
    ) -> oneshot::Receiver<ControlReply> {
        let (reply, answer) = oneshot::channel();
        let input = Input::Control {
            request,
            operator,
            reply,
        };
        inputs.send(input).await.unwrap();
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
            None,
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

        let message = PeerMessage::RegisterBroker { broker_epoch: 1 };
        inputs
            .send(Input::Peer {
                from: PeerId::Broker(2),
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

    /// Arms `Lag(1)` and `Lag(2)` at once; firing `Lag(1)` cancels `Lag(2)`, which then
    /// answers `None` (not armed) as a core does, and tells the test what fired.
    struct CancellingRole {
        fired: mpsc::UnboundedSender<Timer>,
        cancelled: bool,
    }

    impl Role for CancellingRole {
        fn start(&mut self) -> Result<Output, NodeError> {
            let arm = vec![Timer::Lag(1), Timer::Lag(2)];
            Ok(Output {
                arm,
                ..Output::default()
            })
        }
        fn step_peer(&mut self, from: PeerId, message: PeerMessage) -> Result<Output, NodeError> {
            EchoRole.step_peer(from, message)
        }
        fn step_client(
            &mut self,
            client: ClientId,
            request: ClientRequest,
        ) -> Result<Output, NodeError> {
            EchoRole.step_client(client, request)
        }
        fn fire(&mut self, timer: &Timer) -> Result<Option<Output>, NodeError> {
            if *timer == Timer::Lag(2) && self.cancelled {
                return Ok(None);
            }
            self.fired.send(timer.clone()).unwrap();
            self.cancelled = true;
            let cancel = vec![Timer::Lag(2)];
            Ok(Some(Output {
                cancel,
                ..Output::default()
            }))
        }
        fn snapshot(&self) -> Result<Snapshot, NodeError> {
            EchoRole.snapshot()
        }
        fn metadata(&self) -> Metadata {
            EchoRole.metadata()
        }
        fn trace_state(&self, with_log: bool) -> Result<NodeState, NodeError> {
            EchoRole.trace_state(with_log)
        }
        fn close(&mut self) -> Result<(), NodeError> {
            Ok(())
        }
    }

    /// Fails every message as a full disk fails a broker's append; closing after that would
    /// meet a core whose writes were not applied, so `close` must not be called.
    struct FailingRole;

    impl Role for FailingRole {
        fn start(&mut self) -> Result<Output, NodeError> {
            Ok(Output::default())
        }
        fn step_peer(&mut self, _from: PeerId, _message: PeerMessage) -> Result<Output, NodeError> {
            Err(NodeError::Core("no space left on device".into()))
        }
        fn step_client(
            &mut self,
            _client: ClientId,
            _request: ClientRequest,
        ) -> Result<Output, NodeError> {
            Err(NodeError::Core("no space left on device".into()))
        }
        fn fire(&mut self, _timer: &Timer) -> Result<Option<Output>, NodeError> {
            Ok(None)
        }
        fn snapshot(&self) -> Result<Snapshot, NodeError> {
            EchoRole.snapshot()
        }
        fn metadata(&self) -> Metadata {
            EchoRole.metadata()
        }
        fn trace_state(&self, with_log: bool) -> Result<NodeState, NodeError> {
            EchoRole.trace_state(with_log)
        }
        fn close(&mut self) -> Result<(), NodeError> {
            panic!("closed after a storage error");
        }
    }

    /// Goal: a node whose input failed (storage I/O) stops with that error and does not close
    /// its role (found by `insync chaos`: a broker whose append met a full disk then panicked
    /// in its clean-stop flush). Method: a role that fails its first message.
    #[tokio::test]
    async fn an_input_error_stops_the_node_without_closing_it() {
        let (trigger, shutdown) = shutdown_pair();
        let (inputs, receiver) = mpsc::channel(16);
        let outbound = Outbound::new(BTreeMap::new());
        let event_loop = EventLoop::new(FailingRole, receiver, outbound, None, trigger);
        let running = tokio::spawn(event_loop.run(shutdown));
        let message = PeerMessage::RegisterBroker { broker_epoch: 1 };
        let from = PeerId::Broker(2);
        inputs.send(Input::Peer { from, message }).await.unwrap();
        let stopped = running.await.expect("close is not called");
        assert!(matches!(stopped, Err(NodeError::Core(_))), "{stopped:?}");
    }

    /// Goal: a timer that was due but cancelled by the timer fired before it does not fire
    /// (found by `insync chaos`: a leader's `Lag` fired after another `Lag` cancelled it, and
    /// the broker stopped on the bookkeeping assertion). Method: two timers with one deadline,
    /// the first cancels the second; the loop must fire only the first and keep running.
    #[tokio::test]
    async fn a_due_timer_cancelled_by_an_earlier_one_does_not_fire() {
        let (trigger, shutdown) = shutdown_pair();
        let (inputs, receiver) = mpsc::channel(16);
        let (fired, mut fires) = mpsc::unbounded_channel();
        let role = CancellingRole {
            fired,
            cancelled: false,
        };
        let timing = Timing {
            replica_lag_time_max: std::time::Duration::from_millis(5),
            ..Timing::default()
        };
        let outbound = Outbound::new(BTreeMap::new());
        let event_loop = EventLoop::new(role, receiver, outbound, Some(timing), trigger);
        let running = tokio::spawn(event_loop.run(shutdown));
        assert_eq!(fires.recv().await, Some(Timer::Lag(1)));
        let stopped = control(&inputs, Control::Shutdown).await;
        assert_eq!(stopped.await.unwrap(), ControlReply::ShuttingDown);
        running.await.expect("no bookkeeping panic").unwrap();
        assert_eq!(fires.try_recv().ok(), None, "Lag(2) was cancelled");
    }

    fn refused_stepped_only(request: &str) -> ControlReply {
        let request = request.to_owned();
        ControlReply::Refused(ControlRefusal::SteppedOnly { request })
    }

    fn refused_operator_only(request: &str) -> ControlReply {
        let request = request.to_owned();
        ControlReply::Refused(ControlRefusal::OperatorOnly { request })
    }

    #[tokio::test]
    async fn real_time_node_refuses_harness_requests_and_strangers_get_metadata_only() {
        let (trigger, shutdown) = shutdown_pair();
        let (inputs, receiver) = mpsc::channel(16);
        let role = EchoRole;
        let outbound = Outbound::new(BTreeMap::new());
        let event_loop = EventLoop::new(role, receiver, outbound, Some(Timing::default()), trigger);
        let running = tokio::spawn(event_loop.run(shutdown));

        let fire = Control::FireTimer(Timer::Lag(3));
        let fired = control(&inputs, fire).await.await.unwrap();
        assert_eq!(
            fired,
            refused_stepped_only("FireTimer"),
            "even for the operator"
        );
        let barrier = Control::Barrier {
            received: BTreeMap::new(),
        };
        let barrier = control(&inputs, barrier).await.await.unwrap();
        assert_eq!(barrier, refused_stepped_only("Barrier"));

        for (request, name) in [
            (Control::Inspect, "Inspect"),
            (Control::Shutdown, "Shutdown"),
        ] {
            let answer = control_as(&inputs, request, false).await.await.unwrap();
            assert_eq!(answer, refused_operator_only(name));
        }
        let metadata = control_as(&inputs, Control::Metadata, false).await;
        assert!(
            matches!(metadata.await.unwrap(), ControlReply::Metadata(_)),
            "a stranger may find the leader, and the loop still runs after a refused Shutdown"
        );
        let inspected = control(&inputs, Control::Inspect).await.await.unwrap();
        assert!(matches!(inspected, ControlReply::Inspect(_)));
        let stopped = control(&inputs, Control::Shutdown).await;
        assert_eq!(stopped.await.unwrap(), ControlReply::ShuttingDown);
        running.await.unwrap().unwrap();
    }
}
