//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`) and every input that once
//! broke a reader (`fuzz/regressions/<target>/`), replayed through the same entry functions
//! the fuzzer calls (`insync_impl::fuzzing`), on a stable toolchain: CI runs the fuzzers' finds
//! as ordinary tests (docs/fuzzing.md). The trace-file target replays in
//! `conformance/tests/fuzz_corpus.rs`.
//!
//! The seed inputs are written by `regenerate_seed_corpora` (ignored; run it with
//! `cargo test --profile checked -p insync-impl --test fuzz_corpora -- --ignored`) from real
//! values, so they stay valid when a message changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use insync_impl::core::{ControllerState, ProtocolConfig, Variant};
use insync_impl::fuzzing;
use insync_impl::kafka::topic_table::{TopicRefusal, TopicTable};
use insync_impl::kafka::TopicSpec;
use insync_impl::protocol::{
    Acks, ClientReply, ClientRequest, ConsumeResult, Control, ControlRefusal, ControlReply,
    FetchResult, Metadata, NodeId, PeerMessage, ProduceResult, Timer, View,
};
use insync_impl::storage::checkpoint::encode_checkpoint;
use insync_impl::storage::log_format::encode_record;
use insync_impl::storage::{EpochEntry, Record};
use insync_impl::wire::{encode, ControlHello, Credential, Hello, HelloReply, PeerName};

/// The broker's allocator: the Kafka decoder reserves by counts a peer states, and the
/// `kafka_request` regressions include such a count (docs/kafka.md).
#[global_allocator]
static ALLOCATOR: insync_impl::kafka::lazy_alloc::LazyLargeAllocator =
    insync_impl::kafka::lazy_alloc::LazyLargeAllocator;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every input of `target`'s corpus and regressions; the corpus must not be empty.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            inputs.push((path, bytes));
        }
    }
    assert!(!inputs.is_empty(), "{target} has a committed corpus");
    inputs
}

fn replay(target: &str, entry: impl Fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry(&bytes)));
        assert!(outcome.is_ok(), "{target} panics on {}", path.display());
    }
}

#[test]
fn frames_and_handshake_corpus_replays() {
    replay("frames_handshake", fuzzing::frames_and_handshake);
}

#[test]
fn message_decoding_corpus_replays() {
    replay("message_decoding", fuzzing::message_decoding);
}

/// The seeds are written by `regenerate_kafka_seed_corpus` in `kafka_bad_input.rs` (ignored),
/// which has the request builders: one valid frame per advertised API and version.
#[test]
fn kafka_request_corpus_replays() {
    replay("kafka_request", fuzzing::kafka_request);
}

#[test]
fn checkpoint_corpus_replays() {
    replay("checkpoint", fuzzing::checkpoint_reading);
}

#[test]
fn log_recovery_corpus_replays() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("data");
    replay("log_recovery", |bytes| fuzzing::log_recovery(&dir, bytes));
}

// ---------------------------------------------------------------------------------------
// Seeds

fn view() -> View {
    View {
        leader: Some(1),
        leader_epoch: 2,
        isr: BTreeSet::from([1, 2, 3]),
        partition_epoch: 4,
    }
}

fn record(offset: u64, leader_epoch: u32) -> Record {
    Record {
        offset,
        leader_epoch,
        producer_id: 7,
        sequence: offset as u32,
        value: format!("value-{offset}").into_bytes(),
    }
}

fn peer_messages() -> Vec<PeerMessage> {
    vec![
        PeerMessage::LeaderAndIsr(view()),
        PeerMessage::AlterPartitionResponse { result: Ok(view()) },
        PeerMessage::AlterPartition {
            isr: BTreeSet::from([1, 2]),
            leader_epoch: 2,
            partition_epoch: 4,
            broker_epochs: vec![(2, 1)],
        },
        PeerMessage::RegisterBroker { broker_epoch: 3 },
        PeerMessage::Fetch {
            leader_epoch: 2,
            fetch_offset: 10,
            last_fetched_epoch: 1,
            broker_epoch: 0,
        },
        PeerMessage::FetchResponse {
            leader_epoch: 2,
            fetch_offset: 0,
            result: FetchResult::Records {
                records: vec![record(0, 1), record(1, 2)],
                high_watermark: 1,
            },
        },
    ]
}

fn client_requests() -> Vec<ClientRequest> {
    vec![
        ClientRequest::Produce {
            producer_id: 9,
            first_sequence: 0,
            values: vec![b"hello".to_vec(), b"world".to_vec()],
            acks: Acks::All,
        },
        ClientRequest::Consume {
            fetch_offset: 0,
            max_records: 100,
        },
    ]
}

fn client_replies() -> Vec<ClientReply> {
    vec![
        ClientReply::ProduceResponse {
            producer_id: 9,
            first_sequence: 0,
            result: ProduceResult::Ok { offset: 4 },
        },
        ClientReply::ConsumeResponse {
            result: ConsumeResult::Ok {
                records: vec![record(0, 1)],
                high_watermark: 1,
            },
        },
    ]
}

fn control_replies() -> Vec<ControlReply> {
    let counts = BTreeMap::from([(NodeId::Broker(1), 3), (NodeId::Controller, 1)]);
    vec![
        ControlReply::TimerFired,
        ControlReply::TimerNotArmed(Timer::Lag(2)),
        ControlReply::Barrier {
            emitted: counts.clone(),
            dropped: counts,
        },
        ControlReply::Metadata(Metadata {
            node: NodeId::Broker(1),
            view: Some(view()),
            brokers: BTreeMap::from([(1, "127.0.0.1:9001".to_owned())]),
            controller: Some("127.0.0.1:9000".into()),
        }),
        ControlReply::Refused(ControlRefusal::SteppedOnly {
            request: "FireTimer".into(),
        }),
        ControlReply::ShuttingDown,
        ControlReply::Topics(topic_table()),
        ControlReply::TopicCreated(topic_table()),
        ControlReply::TopicRefused(TopicRefusal::NotEnoughSlots {
            asked: 3,
            free: 1,
            used: 15,
            slots: 16,
        }),
    ]
}

fn topic_table() -> TopicTable {
    let specs = [
        TopicSpec::parse("orders:2").unwrap(),
        TopicSpec::parse("b").unwrap(),
    ];
    TopicTable::from_specs(&specs, 16).unwrap()
}

fn tagged(kind: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut input = vec![kind];
    input.extend(bytes);
    input
}

fn message_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = peer_messages()
        .iter()
        .map(|m| tagged(0, encode(m).unwrap()))
        .collect();
    seeds.extend(
        client_requests()
            .iter()
            .map(|r| tagged(6, encode(r).unwrap())),
    );
    seeds.extend(
        client_replies()
            .iter()
            .map(|r| tagged(7, encode(r).unwrap())),
    );
    let controls = [
        Control::Inspect,
        Control::FireTimer(Timer::Expire(3)),
        Control::Barrier {
            received: BTreeMap::from([(NodeId::Broker(2), 5)]),
        },
        Control::Metadata,
        Control::Shutdown,
        Control::Topics,
        Control::CreateTopic {
            name: "fresh".into(),
            partitions: 3,
            validate_only: false,
        },
    ];
    seeds.extend(controls.iter().map(|c| tagged(1, encode(c).unwrap())));
    seeds.extend(
        control_replies()
            .iter()
            .map(|r| tagged(2, encode(r).unwrap())),
    );
    seeds.push(tagged(
        3,
        encode(&Hello::new("insync", PeerName::Client(5))).unwrap(),
    ));
    let ok = HelloReply::HelloOk {
        sender: PeerName::Controller,
    };
    seeds.push(tagged(4, encode(&ok).unwrap()));
    let control = ControlHello {
        credential: Some(Credential::new("fuzzing-operator-token")),
    };
    seeds.push(tagged(5, encode(&control).unwrap()));
    seeds
}

fn frame(value: &impl serde::Serialize) -> Vec<u8> {
    let payload = encode(value).unwrap();
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend(payload);
    bytes
}

fn handshake_seeds() -> Vec<Vec<u8>> {
    let operator = ControlHello {
        credential: Some(Credential::new("fuzzing-operator-token")),
    };
    let wrong = ControlHello {
        credential: Some(Credential::new("not-the-operator-token")),
    };
    let harness = Hello::new("insync", PeerName::Harness);
    let mut old = Hello::new("insync", PeerName::Broker(2));
    old.protocol_version -= 1;
    let streams = [
        [
            frame(&Hello::new("insync", PeerName::Broker(2))),
            frame(&peer_messages()[4]),
        ]
        .concat(),
        [frame(&harness), frame(&operator), frame(&Control::Shutdown)].concat(),
        [frame(&harness), frame(&ControlHello { credential: None })].concat(),
        [frame(&harness), frame(&wrong)].concat(),
        frame(&Hello::new("other-cluster", PeerName::Client(1))),
        frame(&old),
    ];
    streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| tagged(index as u8 * 7, stream))
        .collect()
}

fn log_seeds() -> Vec<Vec<u8>> {
    let mut log = Vec::new();
    for (offset, epoch) in [(0, 1), (1, 1), (2, 2), (3, 4)] {
        encode_record(&record(offset, epoch), &mut log);
    }
    let mut corrupt = log.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x40;
    let raw = [
        log.clone(),
        log[..log.len() - 3].to_vec(),
        corrupt,
        Vec::new(),
    ];
    // Mode 1 repairs the CRCs: a changed offset or epoch then reaches its own check.
    let mut seeds: Vec<Vec<u8>> = raw.iter().map(|file| tagged(0, file.clone())).collect();
    seeds.extend(raw.iter().take(2).map(|file| tagged(1, file.clone())));
    seeds
}

fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let protocol = ProtocolConfig {
        variant: Variant::Kip966,
        unclean_leader_election: false,
        min_insync_replicas: 2,
        brokers: vec![1, 2, 3],
    };
    let state = ControllerState::initial(&protocol);
    let entries = vec![
        EpochEntry {
            epoch: 1,
            start_offset: 0,
        },
        EpochEntry {
            epoch: 3,
            start_offset: 17,
        },
    ];
    vec![
        encode_checkpoint(&state).unwrap(),
        encode_checkpoint(&entries).unwrap(),
        encode_checkpoint(&42u64).unwrap(),
        encode(&state).unwrap(),
        encode(&entries).unwrap(),
        encode_checkpoint(&topic_table()).unwrap(),
    ]
}

/// Writes the seeds into `fuzz/corpus/<target>/seed-N` (a fuzzing run adds its finds beside
/// them).
#[test]
#[ignore = "writes the seed corpora into fuzz/corpus; run by hand after a format change"]
fn regenerate_seed_corpora() {
    let targets = [
        ("frames_handshake", handshake_seeds()),
        ("message_decoding", message_seeds()),
        ("log_recovery", log_seeds()),
        ("checkpoint", checkpoint_seeds()),
    ];
    for (target, seeds) in targets {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{index}")), seed).unwrap();
        }
    }
}
