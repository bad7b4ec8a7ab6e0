//! The trace log on disk: what is written is read back, a torn tail after a crash is dropped
//! (and counted), a restarted node continues after the last intact record, and the size
//! bound ends recording with a `Full` record instead of growing the file.

use std::collections::{BTreeMap, BTreeSet};

use insync_impl::core::Write;
use insync_impl::protocol::{
    ControllerSnapshot, NodeId, Outgoing, PeerId, PeerMessage, Record, Timer, View,
};
use insync_impl::trace_log::{
    self, read_log, Input, LogWrite, NodeState, TraceLog, TraceOptions, TracedMessage,
};

fn state(partition_epoch: u32) -> NodeState {
    NodeState::Controller(ControllerSnapshot {
        view: View {
            leader: Some(1),
            leader_epoch: 1,
            isr: BTreeSet::from([1, 2]),
            partition_epoch,
        },
        fenced: BTreeSet::new(),
        elr: BTreeSet::new(),
        broker_epochs: BTreeMap::new(),
        armed_timers: BTreeSet::from([Timer::Expire(1)]),
        timers_fired: BTreeMap::new(),
    })
}

fn record(offset: u64) -> Record {
    Record {
        offset,
        leader_epoch: 1,
        producer_id: 9,
        sequence: offset as u32,
        value: vec![7; 100],
    }
}

/// Writes `count` message records through a recorder and closes it cleanly.
fn write_run(options: &TraceOptions, count: u32) {
    let mut log = TraceLog::open(options, NodeId::Broker(1)).unwrap();
    for i in 0..count {
        let message = PeerMessage::Fetch {
            leader_epoch: 1,
            fetch_offset: u64::from(i),
            last_fetched_epoch: 1,
            broker_epoch: 0,
        };
        let input = log.message_input(NodeId::Broker(2), TracedMessage::of_peer(&message));
        let writes = [Write::Append(vec![record(u64::from(i))])];
        let send = [Outgoing::Peer(PeerId::Broker(2), message)];
        log.record(input, &send, &writes, Some(state(i)));
    }
    log.close(Some(state(count)));
}

fn path(options: &TraceOptions) -> std::path::PathBuf {
    options.dir.join(trace_log::file_name(NodeId::Broker(1)))
}

/// Goal: every record comes back as written, payloads left out, ending with `Stop`.
#[test]
fn records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let options = TraceOptions::new(dir.path().to_owned());
    write_run(&options, 3);
    let log = read_log(&path(&options)).unwrap();
    assert_eq!((log.torn_bytes, log.events.len()), (0, 4));
    let indices: Vec<u64> = log.events.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![0, 1, 2, 3]);
    let second = &log.events[1];
    assert!(matches!(
        second.input,
        Input::Message {
            from: NodeId::Broker(2),
            received: 1,
            ..
        }
    ));
    assert_eq!(
        second.sent[0].1, 1,
        "the second send on the channel to broker 2"
    );
    let LogWrite::Append(appended) = &second.writes[0] else {
        panic!("an append: {:?}", second.writes)
    };
    assert_eq!(appended[0].0, 1);
    assert_eq!(second.state, Some(state(1)));
    assert_eq!(log.events[3].input, Input::Stop);
}

/// Goal: a frame cut short (SIGKILL mid-write) or damaged is dropped with everything after
/// it, counted, and a restarted recorder appends after the last intact record.
#[test]
fn a_torn_tail_is_dropped_and_the_next_incarnation_continues() {
    let dir = tempfile::tempdir().unwrap();
    let options = TraceOptions::new(dir.path().to_owned());
    write_run(&options, 3);
    let file = path(&options);
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&file, &whole[..whole.len() - 5]).unwrap();
    let torn = read_log(&file).unwrap();
    assert_eq!(torn.events.len(), 3, "the Stop record was cut");
    assert!(torn.torn_bytes > 0);
    assert!(torn.torn_reason.as_deref().unwrap().contains("cut short"));

    let mut flipped = whole.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    std::fs::write(&file, &flipped).unwrap();
    let damaged = read_log(&file).unwrap();
    assert_eq!(damaged.events.len(), 3);
    assert!(damaged.torn_reason.as_deref().unwrap().contains("CRC"));

    write_run(&options, 2);
    let continued = read_log(&file).unwrap();
    assert_eq!(
        continued.torn_bytes, 0,
        "the damaged tail was cut before appending"
    );
    let indices: Vec<u64> = continued.events.iter().map(|e| e.index).collect();
    assert_eq!(indices, (0..6).collect::<Vec<u64>>());
    let second_run = &continued.events[3];
    assert!(
        matches!(second_run.input, Input::Message { received: 0, .. }),
        "channel sequence numbers restart with the incarnation"
    );
}

/// Goal: the file never passes its bound; the record that would is replaced by `Full`.
#[test]
fn the_size_bound_stops_recording_with_a_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = TraceOptions::new(dir.path().to_owned());
    options.bytes_max = 4096;
    write_run(&options, 200);
    let bytes = std::fs::metadata(path(&options)).unwrap().len();
    assert!(bytes <= options.bytes_max, "{bytes} bytes");
    let log = read_log(&path(&options)).unwrap();
    let last = log.events.last().unwrap();
    assert!(matches!(last.input, Input::Full { .. }), "{:?}", last.input);
    assert!(log.events.len() > 3 && log.events.len() < 200);
    assert_eq!(
        log.events.iter().filter(|e| e.input == Input::Stop).count(),
        0
    );
}

/// Goal: a file that is not a trace log is refused, not read as an empty run.
#[test]
fn another_file_is_not_a_trace_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.tlog");
    std::fs::write(&file, b"hello").unwrap();
    assert!(read_log(&file).is_err());
}

/// Goal: a log of the previous format version is named as such, by the reader and by a
/// restarted node, which refuses to append frames of another version to it.
#[test]
fn a_log_of_another_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let options = TraceOptions::new(dir.path().to_owned());
    let file = path(&options);
    std::fs::write(&file, b"insync-tlog-v1\n\0\x05\0\0\0").unwrap();
    let error = read_log(&file).unwrap_err();
    assert!(
        error.to_string().contains("another format version"),
        "{error}"
    );
    assert!(TraceLog::open(&options, NodeId::Broker(1)).is_err());
    assert_eq!(std::fs::read(&file).unwrap().len(), 20, "left as it was");
}
