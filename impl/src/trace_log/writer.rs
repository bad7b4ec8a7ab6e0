//! The recorder: the event loop hands it one record per input, and a writer thread encodes
//! and appends them, so the core's task never waits for the disk.
//!
//! Bounds, and what happens at each:
//! - the queue holds [`TRACE_QUEUE_MAX`] records. When it is full the record is not queued and
//!   not waited for; it is counted, and the next record that finds room is preceded by a
//!   `Gap { lost }` record, so a reader knows the log is incomplete from there (validation
//!   then says "incomplete", never "accepted");
//! - the file grows to at most `bytes_max` ([`TRACE_LOG_BYTES_MAX`] unless told otherwise).
//!   The record that would pass it is replaced by a final `Full` record and nothing more is
//!   written by this incarnation: validation needs the run from its start, so a log that
//!   dropped its oldest records would be worth less than one that stops.
//!
//! The writer thread hands what it has to the operating system (`write`, no fsync) whenever
//! the queue is empty: a SIGKILL keeps what the kernel has, so a killed node's log loses at
//! most the records still queued. A power loss can tear the tail; the reader drops it.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use tracing::warn;

use super::event::{Event, Input, LogWrite, NodeState, TracedMessage};
use super::file::{encode_frame, encode_owned_frame, open_for_append, TraceFileError};
use crate::core::Write;
use crate::protocol::{NodeId, Outgoing};

/// Records queued between the event loop and the writer thread.
pub const TRACE_QUEUE_MAX: usize = 16 * 1024;

/// The default bound of one node's trace log, in bytes.
pub const TRACE_LOG_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Room kept below the bound for the final `Full` record.
const FULL_RECORD_BYTES: u64 = 64;

/// Where and how much to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceOptions {
    /// The run's trace directory; every node writes its own file there.
    pub dir: PathBuf,
    pub bytes_max: u64,
    pub queue_max: usize,
}

impl TraceOptions {
    pub fn new(dir: PathBuf) -> Self {
        TraceOptions {
            dir,
            bytes_max: TRACE_LOG_BYTES_MAX,
            queue_max: TRACE_QUEUE_MAX,
        }
    }
}

/// One node's recorder. See the module doc.
pub struct TraceLog {
    queue: Option<SyncSender<Event>>,
    writer: Option<JoinHandle<()>>,
    next_index: u64,
    /// Records not queued since the last one that was.
    lost: u64,
    /// Per-channel sequence numbers of this incarnation: sent to, received from.
    sent: BTreeMap<NodeId, u64>,
    received: BTreeMap<NodeId, u64>,
}

impl TraceLog {
    /// Opens (or continues, after a restart) `node`'s log in `options.dir`.
    pub fn open(options: &TraceOptions, node: NodeId) -> Result<Self, TraceFileError> {
        std::fs::create_dir_all(&options.dir).map_err(|source| TraceFileError::Io {
            path: options.dir.clone(),
            source,
        })?;
        let path = options.dir.join(super::file_name(node));
        let (file, bytes, next_index) = open_for_append(&path)?;
        let (queue, records) = mpsc::sync_channel(options.queue_max);
        let bytes_max = options.bytes_max;
        let writer = std::thread::Builder::new()
            .name("trace-log".into())
            .spawn(move || write_records(&path, file, bytes, bytes_max, records))
            .map_err(|source| TraceFileError::Io {
                path: options.dir.clone(),
                source,
            })?;
        Ok(TraceLog {
            queue: Some(queue),
            writer: Some(writer),
            next_index,
            lost: 0,
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
        })
    }

    /// The input record of a message from `from`, with its receive sequence number.
    pub fn message_input(&mut self, from: NodeId, message: TracedMessage) -> Input {
        let count = self.received.entry(from).or_insert(0);
        let received = *count;
        *count += 1;
        Input::Message {
            from,
            received,
            message,
        }
    }

    /// Records one handled input: what it sent (in order), wrote, and the state after it.
    pub fn record(
        &mut self,
        input: Input,
        send: &[Outgoing],
        writes: &[Write],
        state: Option<NodeState>,
    ) {
        let sent = send
            .iter()
            .map(|outgoing| {
                let (target, message) = TracedMessage::of_outgoing(outgoing);
                let count = self.sent.entry(target).or_insert(0);
                *count += 1;
                (target, *count - 1, message)
            })
            .collect();
        let writes = writes.iter().map(LogWrite::of).collect();
        self.enqueue(input, sent, writes, state);
    }

    fn enqueue(
        &mut self,
        input: Input,
        sent: Vec<(NodeId, u64, TracedMessage)>,
        writes: Vec<LogWrite>,
        state: Option<NodeState>,
    ) {
        if self.lost > 0 && !self.try_queue(Input::Gap { lost: self.lost }, vec![], vec![], None) {
            self.lost += 1;
            return;
        }
        self.lost = 0;
        if !self.try_queue(input, sent, writes, state) {
            self.lost = 1;
        }
    }

    /// Queues one record if there is room; never waits.
    fn try_queue(
        &mut self,
        input: Input,
        sent: Vec<(NodeId, u64, TracedMessage)>,
        writes: Vec<LogWrite>,
        state: Option<NodeState>,
    ) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        let event = Event {
            index: self.next_index,
            input,
            sent,
            writes,
            state,
        };
        match queue.try_send(event) {
            Ok(()) => {
                self.next_index += 1;
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                // The writer stopped (a write error, already logged): nothing more is kept.
                self.queue = None;
                false
            }
        }
    }

    /// The clean stop: a `Stop` record with the state after it (waiting for room, since the
    /// core is done), then the writer drains the queue and exits.
    pub fn close(mut self, state: Option<NodeState>) {
        if let Some(queue) = self.queue.take() {
            let mut last = Vec::new();
            if self.lost > 0 {
                last.push(Input::Gap { lost: self.lost });
            }
            last.push(Input::Stop);
            for input in last {
                let state = matches!(input, Input::Stop)
                    .then(|| state.clone())
                    .flatten();
                let event = Event {
                    index: self.next_index,
                    input,
                    sent: vec![],
                    writes: vec![],
                    state,
                };
                self.next_index += 1;
                let _ = queue.send(event);
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for TraceLog {
    /// Without `close` (an error path) the queued records are still written; no `Stop`.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: encode, append, hand to the OS whenever the queue runs empty.
fn write_records(
    path: &Path,
    file: std::fs::File,
    mut bytes: u64,
    bytes_max: u64,
    records: Receiver<Event>,
) {
    let mut out = BufWriter::new(file);
    let mut frame = Vec::new();
    // Bounded by the senders: it ends when the recorder is dropped or closed.
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        while let Some(event) = next.take() {
            frame.clear();
            let index = event.index;
            if let Err(error) = encode_owned_frame(event, &mut frame) {
                warn!(%error, index, "trace record not encodable; recording stops");
                return;
            }
            if bytes + frame.len() as u64 > bytes_max.saturating_sub(FULL_RECORD_BYTES) {
                finish_full(path, &mut out, index, bytes);
                return;
            }
            if let Err(error) = out.write_all(&frame) {
                warn!(%error, path = %path.display(), "trace log write failed; recording stops");
                return;
            }
            bytes += frame.len() as u64;
            next = records.try_recv().ok();
        }
        if let Err(error) = out.flush() {
            warn!(%error, path = %path.display(), "trace log write failed; recording stops");
            return;
        }
    }
}

/// Replaces the record that would pass the bound by a final `Full` record.
fn finish_full(path: &Path, out: &mut BufWriter<std::fs::File>, index: u64, bytes: u64) {
    warn!(path = %path.display(), bytes, "trace log reached its size bound; recording stops");
    let full = Event {
        index,
        input: Input::Full { bytes },
        sent: vec![],
        writes: vec![],
        state: None,
    };
    let mut frame = Vec::new();
    if encode_frame(&full, &mut frame).is_ok() {
        let _ = out.write_all(&frame);
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorder whose queue the test holds, so fullness is deterministic.
    fn held(queue_max: usize) -> (TraceLog, Receiver<Event>) {
        let (queue, records) = mpsc::sync_channel(queue_max);
        let log = TraceLog {
            queue: Some(queue),
            writer: None,
            next_index: 0,
            lost: 0,
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
        };
        (log, records)
    }

    fn timer_record(log: &mut TraceLog) {
        log.record(Input::Timer(crate::protocol::Timer::Flush), &[], &[], None);
    }

    /// Goal: a full queue never blocks and never loses a record silently: the next record
    /// that finds room is preceded by a `Gap` that counts exactly the records not kept, and
    /// indices stay consecutive over what was kept.
    #[test]
    fn a_full_queue_records_a_gap_with_the_exact_count() {
        let (mut log, records) = held(2);
        for _ in 0..5 {
            timer_record(&mut log);
        }
        let kept: Vec<Event> = records.try_iter().collect();
        assert_eq!(kept.len(), 2, "two fitted; three were counted as lost");
        timer_record(&mut log);
        let after: Vec<Event> = records.try_iter().collect();
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].input, Input::Gap { lost: 3 });
        assert_eq!(after[1].input, Input::Timer(crate::protocol::Timer::Flush));
        let indices: Vec<u64> = kept.iter().chain(&after).map(|e| e.index).collect();
        assert_eq!(indices, vec![0, 1, 2, 3]);
    }

    /// Goal: each channel has its own sequence numbers, on both sides.
    #[test]
    fn sequence_numbers_are_per_channel() {
        let (mut log, records) = held(8);
        use crate::protocol::{PeerId, PeerMessage};
        let message = PeerMessage::RegisterBrokerResponse;
        let send = vec![
            Outgoing::Peer(PeerId::Broker(2), message.clone()),
            Outgoing::Peer(PeerId::Broker(3), message.clone()),
            Outgoing::Peer(PeerId::Broker(2), message.clone()),
        ];
        let traced = || TracedMessage::of_peer(&message);
        let input = log.message_input(NodeId::Controller, traced());
        log.record(input, &send, &[], None);
        let input = log.message_input(NodeId::Controller, traced());
        log.record(input, &[], &[], None);
        let events: Vec<Event> = records.try_iter().collect();
        let numbers: Vec<(NodeId, u64)> = events[0].sent.iter().map(|(n, s, _)| (*n, *s)).collect();
        assert_eq!(
            numbers,
            vec![
                (NodeId::Broker(2), 0),
                (NodeId::Broker(3), 0),
                (NodeId::Broker(2), 1)
            ]
        );
        assert!(matches!(
            events[1].input,
            Input::Message { received: 1, .. }
        ));
    }
}
