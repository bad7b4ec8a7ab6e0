//! The recorder: the event loop hands it one record per input, and a writer thread encodes
//! and appends them, so the core's task never waits for the disk.
//!
//! Records travel in batches: the recorder collects them and hands a batch over when it holds
//! [`TRACE_BATCH_MAX`] records or when its first record is [`TRACE_BATCH_AGE_MAX`] old (the
//! event loop waits for [`TraceLog::hand_over_deadline`] as for a timer). Handing over each
//! record woke the writer thread once per input, a futex call on the event loop and a context
//! switch that, on a busy machine, let other threads take the core the event loop was on;
//! `insync bench` measured the traced median 40 % lower at the highest input rate so. Handing
//! over whenever no input was waiting did not help: a follower is idle after nearly every fetch
//! answer. With the age bound the writer wakes at most about a hundred times a second.
//!
//! Bounds, and what happens at each:
//! - the queue holds [`TRACE_QUEUE_MAX`] records (as batches of at most [`TRACE_BATCH_MAX`]).
//!   When it is full the batch is not queued and not waited for; its records are counted, and
//!   the next batch starts with a `Gap { lost }` record, so a reader knows the log is
//!   incomplete from there (validation then says "incomplete", never "accepted");
//! - the file grows to at most `bytes_max` ([`TRACE_LOG_BYTES_MAX`] unless told otherwise).
//!   The record that would pass it is replaced by a final `Full` record and nothing more is
//!   written by this incarnation: validation needs the run from its start, so a log that
//!   dropped its oldest records would be worth less than one that stops.
//!
//! The writer thread hands what it has to the operating system (`write`, no fsync) whenever
//! the queue is empty: a SIGKILL keeps what the kernel has, so a killed node's log loses at
//! most the records still queued or batched: those of its last [`TRACE_BATCH_AGE_MAX`] at
//! most, more only if the writer is behind. A power loss can tear the tail; the reader drops
//! it.
//!
//! One record is never lost so: an incarnation's `Start`. The event loop hands it over with
//! [`TraceLog::hand_over_written`] and waits until the writer has given it to the operating
//! system before it performs anything the start asked for. So an incarnation that left no
//! `Start` sent nothing; all it can have done is take a broker epoch and open its storage,
//! which validation explains as restarts that crashed at once (`insync validate`, D9 in
//! conformance/DIVERGENCES.md). Without this a node killed early lost its whole incarnation
//! from the log, and the messages it had sent were nobody's.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::warn;

use super::event::{Event, Input, LogWrite, NodeState, TracedMessage};
use super::file::{encode_owned_frame, open_for_append, TraceFileError};
use crate::core::Write;
use crate::protocol::{NodeId, Outgoing};

/// Records queued between the event loop and the writer thread, batched or not.
pub const TRACE_QUEUE_MAX: usize = 16 * 1024;

/// Records the recorder collects before it hands them to the writer thread.
pub const TRACE_BATCH_MAX: usize = 256;

/// How long a record may wait in the recorder's batch before the batch is handed over.
pub const TRACE_BATCH_AGE_MAX: Duration = Duration::from_millis(10);

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

/// What travels to the writer thread: records, and whom to tell once they are written.
struct Handed {
    batch: Vec<Event>,
    written: Option<oneshot::Sender<()>>,
}

/// One node's recorder. See the module doc.
pub struct TraceLog {
    queue: Option<SyncSender<Handed>>,
    writer: Option<JoinHandle<()>>,
    /// Records not yet handed over, numbered from `next_index - batch.len()`.
    batch: Vec<Event>,
    /// When the batch's first record was added (`None`: the batch is empty).
    batch_since: Option<Instant>,
    next_index: u64,
    /// Records not queued since the last batch that was.
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
        let (queue, records) = mpsc::sync_channel(batches_max(options.queue_max));
        let bytes_max = options.bytes_max;
        let writer = std::thread::Builder::new()
            .name("trace-log".into())
            .spawn(move || write_records(&path, file, bytes, bytes_max, records))
            .map_err(|source| TraceFileError::Io {
                path: options.dir.clone(),
                source,
            })?;
        Ok(TraceLog::with_queue(queue, Some(writer), next_index))
    }

    fn with_queue(
        queue: SyncSender<Handed>,
        writer: Option<JoinHandle<()>>,
        next_index: u64,
    ) -> Self {
        TraceLog {
            queue: Some(queue),
            writer,
            batch: Vec::with_capacity(TRACE_BATCH_MAX),
            batch_since: None,
            next_index,
            lost: 0,
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
        }
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
        self.push(input, sent, writes, state);
        if self.batch.len() >= TRACE_BATCH_MAX {
            self.hand_over();
        }
    }

    /// Adds a record to the batch, after a `Gap` if records were lost since the last one.
    fn push(
        &mut self,
        input: Input,
        sent: Vec<(NodeId, u64, TracedMessage)>,
        writes: Vec<LogWrite>,
        state: Option<NodeState>,
    ) {
        if self.queue.is_none() {
            // The writer stopped (a write error, already logged): nothing more is kept.
            return;
        }
        if self.lost > 0 {
            let lost = std::mem::take(&mut self.lost);
            self.push(Input::Gap { lost }, vec![], vec![], None);
        }
        let index = self.next_index;
        self.next_index += 1;
        self.batch_since.get_or_insert_with(Instant::now);
        self.batch.push(Event {
            index,
            input,
            sent,
            writes,
            state,
        });
    }

    /// When the event loop should call [`TraceLog::hand_over`]: the batch's age bound.
    pub fn hand_over_deadline(&self) -> Option<Instant> {
        self.batch_since.map(|since| since + TRACE_BATCH_AGE_MAX)
    }

    /// Hands the batch to the writer thread if there is room; never waits.
    pub fn hand_over(&mut self) {
        self.batch_since = None;
        let Some(queue) = &self.queue else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(TRACE_BATCH_MAX));
        match queue.try_send(Handed {
            batch,
            written: None,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(Handed { batch, .. })) => {
                // Not kept: the numbers go back to the next records, the count into a `Gap`.
                self.next_index -= batch.len() as u64;
                self.lost += batch.iter().map(records_in).sum::<u64>();
            }
            Err(TrySendError::Disconnected(_)) => self.queue = None,
        }
    }

    /// Hands the batch over, waiting for room, and returns what says when the writer has
    /// given it to the operating system (an error there: the writer stopped, already logged).
    /// For the `Start` record (module doc): a node awaits it before it acts on its start.
    pub fn hand_over_written(&mut self) -> oneshot::Receiver<()> {
        let (written, receiver) = oneshot::channel();
        self.hand_over_waiting(Some(written));
        receiver
    }

    /// The clean stop: a `Stop` record with the state after it, then the writer drains the
    /// queue and exits. Waits for room, since the core is done.
    pub fn close(mut self, state: Option<NodeState>) {
        self.push(Input::Stop, vec![], vec![], state);
        self.hand_over_waiting(None);
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    /// Hands the batch over, waiting for room: when the core is done, or at a start, whose
    /// `written` is told once the batch is written (then even an empty batch is sent).
    fn hand_over_waiting(&mut self, written: Option<oneshot::Sender<()>>) {
        self.batch_since = None;
        let batch = std::mem::take(&mut self.batch);
        let Some(queue) = &self.queue else {
            return;
        };
        if batch.is_empty() && written.is_none() {
            return;
        }
        if queue.send(Handed { batch, written }).is_err() {
            // The writer stopped (a write error, already logged).
            self.queue = None;
        }
    }
}

/// How many records an event stands for: a `Gap` for the ones it counts, any other for one.
fn records_in(event: &Event) -> u64 {
    match event.input {
        Input::Gap { lost } => lost,
        _ => 1,
    }
}

/// The queue's bound in batches, so that it holds at most `queue_max` records.
fn batches_max(queue_max: usize) -> usize {
    (queue_max / TRACE_BATCH_MAX).max(1)
}

impl Drop for TraceLog {
    /// Without `close` (an error path) the batched and queued records are still written; no
    /// `Stop`.
    fn drop(&mut self) {
        self.hand_over_waiting(None);
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
    records: Receiver<Handed>,
) {
    let mut out = BufWriter::new(file);
    let mut frame = Vec::new();
    // Bounded by the senders: it ends when the recorder is dropped or closed.
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        while let Some(Handed { batch, written }) = next.take() {
            for event in batch {
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
            }
            if let Some(written) = written {
                if let Err(error) = out.flush() {
                    warn!(%error, path = %path.display(), "trace log write failed; recording stops");
                    return;
                }
                // The recorder may have stopped waiting; nothing to do then.
                let _ = written.send(());
            }
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
    if encode_owned_frame(full, &mut frame).is_ok() {
        let _ = out.write_all(&frame);
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorder whose queue (of `batches` batches) the test holds, so fullness is
    /// deterministic.
    fn held(batches: usize) -> (TraceLog, Receiver<Handed>) {
        let (queue, records) = mpsc::sync_channel(batches);
        (TraceLog::with_queue(queue, None, 0), records)
    }

    /// The batches handed over so far, in order.
    fn handed(records: &Receiver<Handed>) -> Vec<Vec<Event>> {
        records.try_iter().map(|handed| handed.batch).collect()
    }

    fn timer_record(log: &mut TraceLog) {
        log.record(Input::Timer(crate::protocol::Timer::Flush), &[], &[], None);
    }

    fn inputs(batch: &[Event]) -> Vec<(u64, Input)> {
        batch.iter().map(|e| (e.index, e.input.clone())).collect()
    }

    const FLUSH: Input = Input::Timer(crate::protocol::Timer::Flush);

    /// Goal: a full queue never blocks and never loses a record silently: the next batch that
    /// finds room starts with a `Gap` that counts exactly the records not kept, a lost `Gap`'s
    /// count included, and indices stay consecutive over what was kept.
    #[test]
    fn a_full_queue_records_a_gap_with_the_exact_count() {
        let (mut log, records) = held(1);
        for _ in 0..2 {
            timer_record(&mut log);
        }
        log.hand_over();
        for _ in 0..3 {
            timer_record(&mut log);
        }
        log.hand_over();
        timer_record(&mut log);
        log.hand_over();
        let kept: Vec<Vec<Event>> = handed(&records);
        assert_eq!(kept.len(), 1, "one batch fitted");
        assert_eq!(inputs(&kept[0]), vec![(0, FLUSH), (1, FLUSH)]);
        timer_record(&mut log);
        log.hand_over();
        let after: Vec<Vec<Event>> = handed(&records);
        assert_eq!(after.len(), 1);
        assert_eq!(
            inputs(&after[0]),
            vec![(2, Input::Gap { lost: 4 }), (3, FLUSH)],
            "three lost, then a Gap and one more lost with their batch"
        );
    }

    /// Goal: a batch goes to the writer as soon as it is full, without waiting for the event
    /// loop to go idle, and `close` hands over what is left with the `Stop`.
    #[test]
    fn a_full_batch_is_handed_over_by_itself() {
        let (mut log, records) = held(4);
        for _ in 0..TRACE_BATCH_MAX + 1 {
            timer_record(&mut log);
        }
        let batches: Vec<Vec<Event>> = handed(&records);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), TRACE_BATCH_MAX);
        log.close(None);
        let rest: Vec<Vec<Event>> = handed(&records);
        let last = TRACE_BATCH_MAX as u64;
        assert_eq!(
            inputs(&rest[0]),
            vec![(last, FLUSH), (last + 1, Input::Stop)]
        );
    }

    /// Goal: the event loop has a deadline exactly while records wait in the batch, and it is
    /// the first record's age bound, so an idle node's records reach the writer within it.
    #[test]
    fn the_hand_over_deadline_follows_the_first_waiting_record() {
        let (mut log, records) = held(4);
        assert_eq!(log.hand_over_deadline(), None);
        let before = Instant::now();
        timer_record(&mut log);
        let deadline = log.hand_over_deadline().expect("a record waits");
        assert!(deadline >= before + TRACE_BATCH_AGE_MAX);
        assert!(deadline <= Instant::now() + TRACE_BATCH_AGE_MAX);
        timer_record(&mut log);
        assert_eq!(
            log.hand_over_deadline(),
            Some(deadline),
            "the first record's bound"
        );
        log.hand_over();
        assert_eq!(log.hand_over_deadline(), None);
        assert_eq!(handed(&records).into_iter().flatten().count(), 2);
    }

    /// Goal: once `hand_over_written` answers, the records are in the file for any reader (a
    /// SIGKILL now would keep them), while the recorder is still open.
    #[test]
    fn a_written_hand_over_is_in_the_file_when_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let options = TraceOptions::new(dir.path().to_owned());
        let node = NodeId::Broker(1);
        let mut log = TraceLog::open(&options, node).unwrap();
        timer_record(&mut log);
        timer_record(&mut log);
        log.hand_over_written()
            .blocking_recv()
            .expect("the writer answers");
        let path = dir.path().join(super::super::file_name(node));
        let read = super::super::read_log(&path).unwrap();
        assert_eq!(
            read.events.len(),
            2,
            "both records written before the answer"
        );
        assert_eq!(read.torn_bytes, 0);
        log.close(None);
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
        log.hand_over();
        let events: Vec<Event> = handed(&records).into_iter().flatten().collect();
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
