//! Bad input on the Kafka listener stays harmless (issue 12): a malformed or truncated
//! request, an unknown API or version, an oversized batch, a bad CRC is answered with a Kafka
//! error code or ends the connection, never panics, and never reaches the core as part of a
//! batch.
//!
//! Method: the dispatcher runs against a stand-in for the event loop that answers as a
//! leader would and records every `Produce` it is handed. Hand-picked cases pin the error
//! codes; a proptest feeds mutated valid requests of every advertised API and version, and
//! random bodies behind valid headers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use insync_impl::kafka::apis::ADVERTISED;
use insync_impl::kafka::dispatch::{dispatch, Dispatched, Session};
use insync_impl::kafka::producer_ids::ProducerIds;
use insync_impl::kafka::records::parse_stored;
use insync_impl::kafka::topic_table::TopicTable;
use insync_impl::kafka::{KafkaContext, PartitionTable, TopicSpec};
use insync_impl::node::event_loop::Input;
use insync_impl::protocol::{
    ClientReply, ClientRequest, ConsumeResult, Control, ControlReply, Metadata, NodeId,
    ProduceResult, Record, View,
};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader, RequestKind,
    ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use tokio::sync::mpsc;

/// The allocator the `insync` binary runs with (`kafka::lazy_alloc`): without it, a request
/// stating a huge array count aborts the process in the decoder.
#[global_allocator]
static ALLOCATOR: insync_impl::kafka::lazy_alloc::LazyLargeAllocator =
    insync_impl::kafka::lazy_alloc::LazyLargeAllocator;

const TOPIC: &str = "insync";
const LEADER_EPOCH: u32 = 3;

/// What the stand-in core was handed: each produce's values.
type Appended = Arc<Mutex<Vec<Vec<Vec<u8>>>>>;

/// A leader at epoch 3 whose log is whatever was produced to it; every batch is committed.
async fn stand_in_core(mut inputs: mpsc::Receiver<Input>, appended: Appended) {
    let mut clients = BTreeMap::new();
    let mut log: Vec<Record> = Vec::new();
    while let Some(input) = inputs.recv().await {
        match input {
            Input::ClientOpened {
                client, replies, ..
            } => {
                clients.insert(client, replies);
            }
            Input::ClientClosed { client, .. } => {
                clients.remove(&client);
            }
            Input::Control { request, reply, .. } => {
                assert_eq!(
                    request,
                    Control::Metadata,
                    "the adapter asks only for metadata"
                );
                let _ = reply.send(ControlReply::Metadata(metadata()));
            }
            Input::Client { client, request } => {
                let reply = answer(request, &mut log, &appended);
                let _ = clients[&client].try_send(reply);
            }
            Input::Peer { .. } => panic!("no peer talks to the stand-in"),
        }
    }
}

fn answer(request: ClientRequest, log: &mut Vec<Record>, appended: &Appended) -> ClientReply {
    match request {
        ClientRequest::Produce {
            producer_id,
            first_sequence,
            values,
            ..
        } => {
            let offset = log.len() as u64;
            for (index, value) in values.iter().enumerate() {
                log.push(Record {
                    offset: offset + index as u64,
                    leader_epoch: LEADER_EPOCH,
                    producer_id,
                    sequence: first_sequence + index as u32,
                    value: value.clone(),
                });
            }
            appended.lock().unwrap().push(values);
            let result = ProduceResult::Ok { offset };
            ClientReply::ProduceResponse {
                producer_id,
                first_sequence,
                result,
            }
        }
        ClientRequest::Consume {
            fetch_offset,
            max_records,
        } => {
            let records = log
                .iter()
                .skip(fetch_offset as usize)
                .take(max_records as usize)
                .cloned()
                .collect();
            let high_watermark = log.len() as u64;
            ClientReply::ConsumeResponse {
                result: ConsumeResult::Ok {
                    records,
                    high_watermark,
                },
            }
        }
    }
}

fn metadata() -> Metadata {
    Metadata {
        node: NodeId::Broker(1),
        view: Some(View {
            leader: Some(1),
            leader_epoch: LEADER_EPOCH,
            isr: BTreeSet::from([1, 2, 3]),
            partition_epoch: LEADER_EPOCH,
        }),
        brokers: BTreeMap::new(),
        controller: None,
    }
}

fn session() -> (Session, Appended) {
    let (inputs, receiver) = mpsc::channel(64);
    let appended = Appended::default();
    tokio::spawn(stand_in_core(receiver, appended.clone()));
    let topic = TopicSpec::parse(TOPIC).unwrap();
    let table = TopicTable::from_specs(&[topic], 1).unwrap();
    let routes = PartitionTable::of_table(&table, &BTreeMap::from([(0, inputs)]));
    // The receiver goes with the sender: the routes never change in these tests.
    let (_, routes) = tokio::sync::watch::channel(Arc::new(routes));
    let context = KafkaContext {
        broker: 1,
        cluster_id: "insync-test".into(),
        replicas: vec![1, 2, 3],
        advertised: BTreeMap::from([(1, ("127.0.0.1".to_owned(), 9092))]),
        partitions: routes,
        topics: None,
        producer_ids: ProducerIds::new(1, 0),
        connection_serial: AtomicU64::new(0),
    };
    (Session::new(Arc::new(context), 0), appended)
}

fn batch(count: usize, producer_id: i64) -> Bytes {
    let records: Vec<KafkaRecord> = (0..count)
        .map(|index| KafkaRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // A plain producer's batch has base sequence -1; the encoder derives it from the
            // first record's.
            sequence: if producer_id >= 0 {
                index as i32
            } else {
                index as i32 - 1
            },
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("k{index}"))),
            value: Some(Bytes::from(format!("v{index}"))),
            headers: IndexMap::from([(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            )]),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn produce(records: Bytes) -> RequestKind {
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(name())
        .with_partition_data(vec![partition]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![topic]),
    )
}

fn fetch(current_leader_epoch: i32) -> RequestKind {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(current_leader_epoch)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(name())
        .with_partitions(vec![partition]);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![topic]),
    )
}

fn list_offsets() -> RequestKind {
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    let topic = ListOffsetsTopic::default()
        .with_name(name())
        .with_partitions(vec![partition]);
    RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![topic]))
}

/// A valid request of `api` (versions below a field's first leave it at its default).
fn request(api: ApiKey) -> RequestKind {
    match api {
        ApiKey::Produce => produce(batch(3, 7)),
        ApiKey::Fetch => fetch(-1),
        ApiKey::ListOffsets => list_offsets(),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        other => panic!("{other:?} is not advertised"),
    }
}

fn frame(api: ApiKey, version: i16, request: &RequestKind) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    request.encode(&mut out, version).unwrap();
    out.freeze()
}

async fn run(session: &mut Session, frame: Bytes) -> Dispatched {
    dispatch(frame, session).await
}

fn response(api: ApiKey, version: i16, dispatched: Dispatched) -> ResponseKind {
    let Dispatched::Respond(mut bytes) = dispatched else {
        panic!("expected a response, got {dispatched:?}");
    };
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::decode(&mut bytes, header_version).unwrap();
    assert_eq!(header.correlation_id, 42);
    ResponseKind::decode(api, &mut bytes, version).unwrap()
}

fn produce_code(response: ResponseKind) -> i16 {
    let ResponseKind::Produce(response) = response else {
        panic!("a produce response")
    };
    response.responses[0].partition_responses[0].error_code
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Goal: a whole batch reaches the core; a flipped byte under the CRC, too many records, a
/// compressed batch each get their Kafka code and reach nothing.
#[test]
fn bad_batches_get_their_codes_and_reach_nothing() {
    runtime().block_on(async {
        let (mut session, appended) = session();
        let valid = frame(ApiKey::Produce, 9, &produce(batch(3, 7)));
        assert_eq!(
            produce_code(response(ApiKey::Produce, 9, run(&mut session, valid).await)),
            0
        );
        let stored = appended.lock().unwrap().clone();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].iter().all(|value| parse_stored(value).is_some()));

        let mut flipped = BytesMut::from(&batch(3, 7)[..]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let corrupt = frame(ApiKey::Produce, 9, &produce(flipped.freeze()));
        assert_eq!(
            produce_code(response(
                ApiKey::Produce,
                9,
                run(&mut session, corrupt).await
            )),
            2
        );
        let oversized = frame(ApiKey::Produce, 9, &produce(batch(513, 7)));
        assert_eq!(
            produce_code(response(
                ApiKey::Produce,
                9,
                run(&mut session, oversized).await
            )),
            10
        );
        assert_eq!(
            appended.lock().unwrap().len(),
            1,
            "no refused batch reached the core"
        );
    });
}

/// Goal: unknown APIs, unadvertised versions and short frames end the connection; a newer
/// ApiVersions is answered in v0 with UNSUPPORTED_VERSION and the versions served.
#[test]
fn unknown_apis_and_versions_close_or_downgrade() {
    runtime().block_on(async {
        let (mut session, _) = session();
        let short = Bytes::from_static(&[0, 3, 0]);
        assert!(matches!(
            run(&mut session, short).await,
            Dispatched::Close(_)
        ));
        let mut unknown =
            BytesMut::from(&frame(ApiKey::Metadata, 1, &request(ApiKey::Metadata))[..]);
        unknown[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            run(&mut session, unknown.freeze()).await,
            Dispatched::Close(_)
        ));
        let group = frame(
            ApiKey::Heartbeat,
            0,
            &RequestKind::Heartbeat(Default::default()),
        );
        assert!(matches!(
            run(&mut session, group).await,
            Dispatched::Close(_)
        ));
        let old = frame(ApiKey::Fetch, 13, &fetch(-1));
        assert!(matches!(run(&mut session, old).await, Dispatched::Close(_)));
        let newer = frame(ApiKey::ApiVersions, 4, &request(ApiKey::ApiVersions));
        let ResponseKind::ApiVersions(versions) =
            response(ApiKey::ApiVersions, 0, run(&mut session, newer).await)
        else {
            panic!("an ApiVersions response")
        };
        assert_eq!(versions.error_code, 35);
        assert_eq!(versions.api_keys.len(), ADVERTISED.len());
    });
}

/// Goal: KIP-320 in Fetch: an older epoch is FENCED_LEADER_EPOCH, a newer one
/// UNKNOWN_LEADER_EPOCH, the current one or none reads.
#[test]
fn fetch_checks_the_leader_epoch() {
    runtime().block_on(async {
        let (mut session, _) = session();
        let produced = frame(ApiKey::Produce, 9, &produce(batch(2, -1)));
        run(&mut session, produced).await;
        for (epoch, code) in [(2, 74), (4, 75), (3, 0), (-1, 0)] {
            let asked = frame(ApiKey::Fetch, 12, &fetch(epoch));
            let ResponseKind::Fetch(answer) =
                response(ApiKey::Fetch, 12, run(&mut session, asked).await)
            else {
                panic!("a fetch response")
            };
            let partition = &answer.responses[0].partitions[0];
            assert_eq!(partition.error_code, code, "epoch {epoch}");
            if code == 0 {
                assert_eq!(partition.high_watermark, 2);
                assert!(partition
                    .records
                    .as_ref()
                    .is_some_and(|records| !records.is_empty()));
            }
        }
    });
}

/// Goal: the proptest's first find stays fixed: a request stating an array of 2^31 - 1
/// topics ends the connection; the decoder's reservation for it does not abort the process.
#[test]
fn a_huge_array_count_ends_the_connection_and_nothing_else() {
    runtime().block_on(async {
        let (mut session, _) = session();
        let header = frame(ApiKey::Metadata, 1, &request(ApiKey::Metadata));
        let mut input = header[..header.len() - 4].to_vec();
        input.extend_from_slice(&i32::MAX.to_be_bytes());
        let dispatched = run(&mut session, Bytes::from(input)).await;
        assert!(matches!(dispatched, Dispatched::Close(_)), "{dispatched:?}");
    });
}

fn mutated(bytes: &Bytes, mutations: &[(u8, usize, u8)]) -> Bytes {
    let mut out = bytes.to_vec();
    for (kind, at, byte) in mutations {
        if out.is_empty() {
            break;
        }
        let at = at % out.len();
        match kind % 3 {
            0 => out[at] ^= byte | 1,
            1 => out.truncate(at),
            _ => out.insert(at, *byte),
        }
    }
    Bytes::from(out)
}

fn advertised_version() -> impl Strategy<Value = (ApiKey, i16)> {
    (0..ADVERTISED.len()).prop_flat_map(|index| {
        let (api, range) = ADVERTISED[index];
        (Just(api), range.min..=range.max)
    })
}

/// Writes the `kafka_request` fuzz target's seeds: one valid frame per advertised API and
/// version (`cargo test --profile checked -p insync-impl --test kafka_bad_input -- --ignored`).
#[test]
#[ignore]
fn regenerate_kafka_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/kafka_request");
    std::fs::create_dir_all(&dir).unwrap();
    for (api, range) in ADVERTISED {
        for version in range.min..=range.max {
            let seed = frame(*api, version, &request(*api));
            std::fs::write(dir.join(format!("seed-{api:?}-v{version}")), seed).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Goal: whatever the bytes, dispatch returns (a response, no response, or a close)
    /// without panicking, and whatever reached the core is a whole batch of stored records.
    #[test]
    fn mutated_requests_are_answered_or_refused_and_never_half_written(
        (api, version) in advertised_version(),
        mutations in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..4),
        random_body in proptest::collection::vec(any::<u8>(), 0..64),
        use_random_body in any::<bool>(),
    ) {
        runtime().block_on(async {
            let (mut session, appended) = session();
            let valid = frame(api, version, &request(api));
            let input = match use_random_body {
                true => {
                    let header_only = frame(api, version, &request(api));
                    let mut input = header_only[..8.min(header_only.len())].to_vec();
                    input.extend_from_slice(&random_body);
                    Bytes::from(input)
                }
                false => mutated(&valid, &mutations),
            };
            let _ = run(&mut session, input).await;
            for values in appended.lock().unwrap().iter() {
                prop_assert!(!values.is_empty() && values.len() <= 512);
                prop_assert!(values.iter().all(|value| parse_stored(value).is_some()));
            }
            Ok(())
        })?;
    }
}
