//! Kafka clients nobody here wrote, against a `cluster up`-style cluster with its Kafka
//! listeners (issue 12): librdkafka through the `confluent-kafka` Python package, and kcat.
//! The scripts are in `tests/kafka/`; each prints one JSON object the test judges.
//!
//! The clients must be installed (CI installs them in `.ci/run`): a missing one fails the
//! test with the command that installs it, never a silent pass.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{signal, TestCluster};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const TOPIC: &str = "orders";
/// A client run that takes longer than this has hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kafka")
        .join(name)
}

/// Fails with the install command when `confluent_kafka` cannot be imported.
fn require_confluent_kafka() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output();
    let found = probe.is_ok_and(|output| output.status.success());
    assert!(
        found,
        "the confluent-kafka Python package is missing: pip install confluent-kafka"
    );
}

/// Fails with the install command when kcat is not on the PATH.
fn require_kcat() {
    let probe = std::process::Command::new("kcat").arg("-V").output();
    let found = probe.is_ok_and(|output| output.status.success());
    assert!(found, "kcat is missing: apt-get install -y kcat");
}

fn bootstrap(test: &TestCluster) -> String {
    let addresses: Vec<&str> = test
        .cluster
        .kafka_addresses()
        .values()
        .map(String::as_str)
        .collect();
    assert!(!addresses.is_empty(), "the cluster serves Kafka");
    addresses.join(",")
}

/// The gated producer (`produce.py`): started, and run until it printed `GATE`.
async fn start_producer(
    bootstrap: &str,
    count: u32,
    gate: u32,
) -> (Child, impl AsyncBufReadExt + Unpin) {
    start_producer_to(bootstrap, TOPIC, count, gate).await
}

/// [`start_producer`] to `topic`.
async fn start_producer_to(
    bootstrap: &str,
    topic: &str,
    count: u32,
    gate: u32,
) -> (Child, impl AsyncBufReadExt + Unpin) {
    let mut child = Command::new("python3")
        .arg(script("produce.py"))
        .args([bootstrap, topic, &count.to_string(), &gate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let read = tokio::time::timeout(CLIENT_TIMEOUT, lines.read_line(&mut line)).await;
    assert!(
        matches!(read, Ok(Ok(n)) if n > 0),
        "the producer reached its gate"
    );
    assert_eq!(line.trim(), "GATE");
    (child, lines)
}

/// Opens the producer's gate and reads its summary.
async fn finish_producer(mut child: Child, mut lines: impl AsyncBufReadExt + Unpin) -> Value {
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(b"go\n")
        .await
        .expect("the producer reads its gate");
    drop(stdin);
    let mut summary = String::new();
    let read = tokio::time::timeout(CLIENT_TIMEOUT, lines.read_line(&mut summary)).await;
    assert!(matches!(read, Ok(Ok(n)) if n > 0), "the producer finished");
    let status = child.wait().await.expect("the producer exits");
    assert!(status.success(), "produce.py failed: {status}");
    serde_json::from_str(&summary).expect("the producer's summary is JSON")
}

async fn consume(bootstrap: &str, expected: usize) -> Vec<Value> {
    let summary = consume_partitions(bootstrap, TOPIC, expected, 1).await;
    summary["records"].as_array().expect("records").clone()
}

/// `consume.py` on partitions `0..partitions` of `topic`: its whole summary (records and
/// the topic's Metadata).
async fn consume_partitions(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    partitions: u32,
) -> Value {
    let args = [
        bootstrap,
        topic,
        &expected.to_string(),
        &partitions.to_string(),
    ];
    run_json_script("consume.py", &args).await
}

/// Runs `tests/kafka/NAME` with `args` to its end (within [`CLIENT_TIMEOUT`]) and returns the
/// JSON it printed; the test fails with the script's stderr if it fails.
async fn run_json_script(name: &str, args: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg(script(name))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLIENT_TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("{name} finishes"))
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// [`assert_exactly_once_in_order_per_partition`] for a topic of one partition: every record
/// is in partition 0.
fn assert_exactly_once_in_order(summary: &Value, consumed: &[Value], count: u32) {
    let per_partition = assert_exactly_once_in_order_per_partition(summary, consumed, count);
    let partitions: Vec<u64> = per_partition.into_keys().collect();
    assert_eq!(partitions, vec![0], "one partition");
}

/// Every acknowledged record is read exactly once, from the partition and at the offset it
/// was acknowledged at, with its key and header; within each partition the producer's order is
/// kept; nothing unproduced appears. Returns how many records each partition holds.
fn assert_exactly_once_in_order_per_partition(
    summary: &Value,
    consumed: &[Value],
    count: u32,
) -> BTreeMap<u64, usize> {
    let errors = summary["errors"].as_array().map(Vec::len);
    assert_eq!(errors, Some(0), "{}", summary["errors"]);
    assert_eq!(summary["unflushed"], 0);
    let acked: BTreeMap<String, (u64, u64)> = summary["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .map(|triple| {
            let value = triple[1].as_str().unwrap().to_owned();
            (
                value,
                (triple[2].as_u64().unwrap(), triple[0].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        acked.len(),
        count as usize,
        "every record acknowledged once"
    );
    let mut seen = BTreeMap::new();
    let mut last_index: BTreeMap<u64, u32> = BTreeMap::new();
    for record in consumed {
        let (offset, key, value, partition) = (
            record[0].as_u64().unwrap(),
            record[1].as_str().unwrap(),
            record[2].as_str().unwrap(),
            record[4].as_u64().unwrap(),
        );
        let index: u32 = value
            .strip_prefix("record-")
            .expect("produced")
            .parse()
            .unwrap();
        assert_eq!(key, format!("key-{index}"), "the key is kept");
        assert_eq!(record[3]["index"], index.to_string(), "the header is kept");
        let first = seen.insert(value.to_owned(), (partition, offset)).is_none();
        assert!(first, "{value} read twice");
        let last = last_index.insert(partition, index);
        assert!(
            last < Some(index),
            "partition {partition}: {value} after record-{last:?}: order broken"
        );
    }
    assert_eq!(
        seen, acked,
        "read exactly what was acknowledged, where it was"
    );
    let mut per_partition = BTreeMap::new();
    for (partition, _) in seen.values() {
        *per_partition.entry(*partition).or_insert(0) += 1;
    }
    per_partition
}

/// Waits until every partition's controller core names a leader `leads(index, leader)`
/// accepts, or fails the test with `described`.
async fn every_partition_controller(
    test: &TestCluster,
    partitions: &[insync_impl::node::PartitionNodes],
    described: &str,
    leads: impl Fn(u32, Option<u32>) -> bool + Copy,
) {
    let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
    for partition in partitions {
        let index = partition.index;
        let accepted = move |snapshot: &insync_impl::protocol::Snapshot| match snapshot {
            insync_impl::protocol::Snapshot::Controller(controller) => {
                leads(index, controller.view.leader)
            }
            insync_impl::protocol::Snapshot::Broker(_) => false,
        };
        let what = format!("partition {index}'s controller: {described}");
        let waited = test
            .cluster
            .wait_for(&partition.controller, deadline, &what, accepted);
        waited
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
    }
}

/// Goal: a topic of three partitions is three instances of the protocol, and each survives a
/// killed broker on its own: librdkafka's idempotent producer (acks=all) spreads records over
/// the partitions by key, loses and duplicates none, and a consumer reads each partition in
/// order; the partitions start led by brokers 1, 2 and 3 (each assignment rotated), every
/// partition's controller core ends with a leader other than the killed broker, and Metadata
/// reports a leader (in its ISR, not the killed broker) for every partition. Method: 6,000
/// records; after 600 acknowledgements, with more in flight, the leader of partition 0
/// (broker 1) gets SIGKILL; the producer sends the rest.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_to_three_partitions_through_a_killed_broker_exactly_once() {
    require_confluent_kafka();
    let mut test = TestCluster::start_with_kafka(3, &[], "parts:3").await;
    let partitions = test.cluster.partitions().to_vec();
    assert_eq!(
        partitions.len(),
        2,
        "partitions 1 and 2 on ports of their own"
    );
    let bootstrap = bootstrap(&test);
    // Partition p's assignment is rotated by p (docs/protocol.md §7): leaders 1, 2, 3.
    let spread = |index: u32, leader: Option<u32>| leader == Some(index + 1);
    every_partition_controller(&test, &partitions, "its initial leader", spread).await;
    let (producer, lines) = start_producer_to(&bootstrap, "parts", 6_000, 600).await;
    let killed = test.controller().await.view.leader.expect("a leader");
    assert_eq!(
        killed, 1,
        "partition 0 leads from broker 1, as in the model"
    );
    test.cluster
        .kill_broker(killed)
        .await
        .expect("kill a broker");
    let summary = finish_producer(producer, lines).await;
    test.wait_new_leader(killed).await;
    let elected = |_, leader: Option<u32>| leader.is_some_and(|leader| leader != killed);
    every_partition_controller(&test, &partitions, "a new leader", elected).await;
    let consumed = consume_partitions(&bootstrap, "parts", 6_000, 3).await;
    let records = consumed["records"].as_array().expect("records");
    let per_partition = assert_exactly_once_in_order_per_partition(&summary, records, 6_000);
    eprintln!("records per partition: {per_partition:?}");
    assert_eq!(
        per_partition.len(),
        3,
        "the partitioner used every partition"
    );
    let metadata = consumed["metadata"].as_object().expect("metadata");
    assert_eq!(
        metadata.len(),
        3,
        "Metadata describes three partitions: {metadata:?}"
    );
    for (partition, described) in metadata {
        let leader = described["leader"].as_i64().expect("a leader id");
        let isr: Vec<i64> = described["isr"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_i64().unwrap())
            .collect();
        assert!(
            leader > 0 && leader != i64::from(killed),
            "partition {partition}: {described}"
        );
        assert!(
            isr.contains(&leader),
            "partition {partition}: the leader is in its ISR"
        );
        assert!(
            !isr.contains(&i64::from(killed)),
            "partition {partition}: the killed broker left the ISR"
        );
    }
}

/// Goal: librdkafka's idempotent producer (acks=all) loses and duplicates nothing while the
/// leader is killed mid-stream. Method: 10,000 records; after 1,000 acknowledgements, with
/// more in flight, the leader gets SIGKILL; the producer then sends the rest; a plain
/// assign-and-poll consumer reads the partition from offset 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_survives_a_killed_leader_exactly_once() {
    require_confluent_kafka();
    let mut test = TestCluster::start_with_kafka(3, &[], TOPIC).await;
    let bootstrap = bootstrap(&test);
    let (producer, lines) = start_producer(&bootstrap, 10_000, 1_000).await;
    let leader = test.controller().await.view.leader.expect("a leader");
    test.cluster
        .kill_broker(leader)
        .await
        .expect("kill the leader");
    let summary = finish_producer(producer, lines).await;
    let new_leader = test.wait_new_leader(leader).await.view.leader;
    eprintln!("leader {leader} killed; new leader {new_leader:?}");
    let consumed = consume(&bootstrap, 10_000).await;
    assert_exactly_once_in_order(&summary, &consumed, 10_000);
}

/// Goal: the client's own retry goes through a leader change: NOT_LEADER_OR_FOLLOWER from the
/// old leader, then the new leader from Metadata. Method: SIGSTOP the leader once 500 records
/// are acknowledged, let the producer queue the rest towards it, wait until the new leader
/// holds its view, SIGCONT the old one, which answers what it holds with
/// NOT_LEADER_OR_FOLLOWER once it installs the new view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_retries_through_not_leader_or_follower_to_the_new_leader() {
    require_confluent_kafka();
    let test = TestCluster::start_with_kafka(3, &[], TOPIC).await;
    let bootstrap = bootstrap(&test);
    let (producer, lines) = start_producer(&bootstrap, 3_000, 500).await;
    let old_leader = test.controller().await.view.leader.expect("a leader");
    let pid = test.cluster.broker_pid(old_leader).expect("running");
    signal(pid, "-STOP");
    let finishing = tokio::spawn(finish_producer(producer, lines));
    let after = test.wait_new_leader(old_leader).await.view;
    let new_leader = after.leader.expect("elected");
    test.wait_broker(new_leader, "the new leader installed its view", |broker| {
        broker
            .view
            .as_ref()
            .is_some_and(|view| view.leader_epoch == after.leader_epoch)
    })
    .await;
    signal(pid, "-CONT");
    let summary = finishing.await.expect("the producer task");
    let not_leader = summary["not_leader_seen"].as_u64().unwrap_or(0);
    eprintln!("NOT_LEADER_OR_FOLLOWER answers librdkafka logged: {not_leader}");
    assert!(
        not_leader > 0,
        "the client was told NOT_LEADER_OR_FOLLOWER and retried"
    );
    let consumed = consume(&bootstrap, 3_000).await;
    assert_exactly_once_in_order(&summary, &consumed, 3_000);
}

/// Goal: kcat lists the metadata (3 brokers, the topic's leader and ISR), produces, and
/// consumes what it produced, keys included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_lists_metadata_produces_and_consumes() {
    require_kcat();
    let test = TestCluster::start_with_kafka(3, &[], TOPIC).await;
    let bootstrap = bootstrap(&test);
    let view = test.controller().await.view;
    let listed = kcat(&["-b", &bootstrap, "-L", "-J"], None).await;
    let listed: Value = serde_json::from_str(&listed).expect("kcat -L -J prints JSON");
    assert_eq!(
        listed["brokers"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let topic = &listed["topics"][0];
    assert_eq!(topic["topic"], TOPIC);
    let partition = &topic["partitions"][0];
    assert_eq!(partition["leader"], view.leader.expect("a leader"));
    let isr: Vec<u64> = partition["isrs"]
        .as_array()
        .expect("isrs")
        .iter()
        .map(|member| member["id"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = view.isr.iter().map(|id| u64::from(*id)).collect();
    assert_eq!(isr, expected);

    let input: String = (0..50).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat(
        &["-b", &bootstrap, "-t", TOPIC, "-P", "-K:", "-X", "acks=all"],
        Some(&input),
    )
    .await;
    let consumed = kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            TOPIC,
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %k %s\\n",
        ],
        None,
    )
    .await;
    let expected: String = (0..50).map(|i| format!("{i} k{i} v{i}\n")).collect();
    assert_eq!(consumed, expected);
}

/// Goal: acks and min.insync.replicas mean for a Kafka client what they mean in the model:
/// with `--min-isr 2` and the ISR down to the leader, an acks=all produce is refused with
/// NOT_ENOUGH_REPLICAS and never appears; an acks=1 produce is acknowledged, and readable once
/// the HW may move again (KIP-966). Method: kill both
/// followers, wait until the controller's ISR is the leader alone, produce with kcat
/// (`retries=0`, so the broker's answer is the delivery report), then bring a follower back:
/// only the acks=1 record becomes readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_acks_all_is_refused_below_min_isr_and_acks_1_is_not() {
    require_kcat();
    let mut test = TestCluster::start_with_kafka(3, &["--min-isr", "2"], TOPIC).await;
    let leader = test.controller().await.view.leader.expect("a leader");
    let address = test.cluster.kafka_addresses()[&leader].clone();
    for follower in (1..=3).filter(|id| *id != leader) {
        test.cluster.kill_broker(follower).await.expect("kill");
    }
    test.wait_controller("the ISR shrunk to the leader", |controller| {
        controller.view.isr.len() == 1 && controller.view.leader == Some(leader)
    })
    .await;
    let refused = kcat_produce_one(&address, "all").await;
    assert!(
        refused.contains("Not enough in-sync replicas"),
        "acks=all refused: {refused}"
    );
    let accepted = kcat_produce_one(&address, "1").await;
    assert!(
        !accepted.contains("ERROR"),
        "acks=1 acknowledged: {accepted}"
    );
    // KIP-966: below min ISR the HW does not move, so the acks=1 record is appended but not
    // yet readable; the refused one was never appended.
    assert_eq!(kcat_consume_all(&address).await, "");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    test.cluster
        .restart_broker(follower, &[])
        .await
        .expect("restart");
    test.wait_broker(leader, "the HW passed the acks=1 record", |broker| {
        broker.hw >= 1
    })
    .await;
    assert_eq!(kcat_consume_all(&address).await, "acks-1\n");
}

/// Produces the line `acks-ACKS` with kcat at `acks`, no retries; kcat's stderr (it reports a
/// refused delivery there).
async fn kcat_produce_one(address: &str, acks: &str) -> String {
    let acks_flag = format!("acks={acks}");
    let args = [
        "-b",
        address,
        "-t",
        TOPIC,
        "-P",
        "-X",
        &acks_flag,
        "-X",
        "retries=0",
    ];
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kcat runs");
    let mut stdin = child.stdin.take().expect("piped");
    let line = format!("acks-{acks}\n");
    stdin.write_all(line.as_bytes()).await.expect("kcat reads");
    drop(stdin);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output());
    let output = output.await.expect("kcat finishes").expect("kcat output");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every readable record's value, one per line.
async fn kcat_consume_all(address: &str) -> String {
    let args = [
        "-b",
        address,
        "-t",
        TOPIC,
        "-C",
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    kcat(&args, None).await
}

async fn kcat(args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kcat runs");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes()).await.expect("kcat reads");
    }
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("kcat finishes")
        .expect("kcat output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kcat {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Goal: garbage, an oversized frame and a request stating 2^31 - 1 topics each end only
/// their own connection; the broker process lives on and kcat still lists its metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_own_connection() {
    require_kcat();
    let test = TestCluster::start_with_kafka(3, &[], TOPIC).await;
    let address = test.cluster.kafka_addresses()[&1].clone();
    let oversized = (64 * 1024 * 1024i32).to_be_bytes().to_vec();
    let garbage = [0, 0, 0, 6, 0xff, 0xff, 0, 0, 0, 1].to_vec();
    // Metadata v1, correlation 7, no client id, then a topic count of 2^31 - 1.
    let huge_count = [
        0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
    ];
    for bytes in [oversized, garbage, huge_count.to_vec()] {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        stream.write_all(&bytes).await.expect("send");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            CLIENT_TIMEOUT,
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
        );
        let read = read.await.expect("the broker closes the connection");
        assert!(
            read.is_err() || rest.is_empty(),
            "no answer to {bytes:?}: {rest:?}"
        );
    }
    let listed = kcat(&["-b", &address, "-L", "-J"], None).await;
    assert!(listed.contains(TOPIC), "still serving: {listed}");
    assert!(test.cluster.broker_pid(1).is_some());
}

/// Goal: CreateTopics through a real client (librdkafka's AdminClient) is answered with
/// Kafka's error codes: a bad name, a partition count out of 1..=32, a replication factor
/// other than the broker count, a manual replica assignment, the served topic; a valid new
/// topic is created. Method: one case at a time, each its own topic, on 3 partition slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_create_topics_gets_kafkas_error_codes() {
    require_confluent_kafka();
    // Three slots: `orders` takes one, the new two-partition topic the other two.
    let test = TestCluster::start_with_topics(3, &[], &[TOPIC], Some(3)).await;
    let answers = run_json_script("create_topics.py", &[&bootstrap(&test)]).await;
    // librdkafka names Kafka's INVALID_TOPIC_EXCEPTION (17) TOPIC_EXCEPTION.
    let expected = serde_json::json!({
        "bad_name": "TOPIC_EXCEPTION",
        "zero_partitions": "INVALID_PARTITIONS",
        "too_many_partitions": "INVALID_PARTITIONS",
        "replication_factor_2": "INVALID_REPLICATION_FACTOR",
        "manual_assignment": "INVALID_REPLICA_ASSIGNMENT",
        "served": "TOPIC_ALREADY_EXISTS",
        "new": "created",
    });
    assert_eq!(answers, expected);
}

/// `create_topic.py`: one CreateTopics through `bootstrap`; `{"error": name or null,
/// "message": ...}`.
async fn create_topic(bootstrap: &str, name: &str, partitions: u32, validate_only: bool) -> Value {
    let partitions = partitions.to_string();
    let mut args = vec![bootstrap, name, &partitions];
    if validate_only {
        args.push("validate-only");
    }
    run_json_script("create_topic.py", &args).await
}

/// kcat's metadata (`-L -J`) through `bootstrap`: each topic's name and partition count.
async fn kcat_topics(bootstrap: &str) -> BTreeMap<String, usize> {
    let listed = kcat(&["-b", bootstrap, "-L", "-J"], None).await;
    let listed: Value = serde_json::from_str(&listed).expect("kcat -L -J prints JSON");
    let topics = listed["topics"].as_array().expect("topics").iter();
    let counted = topics.map(|topic| {
        let name = topic["topic"].as_str().expect("a name").to_owned();
        (name, topic["partitions"].as_array().map_or(0, Vec::len))
    });
    counted.collect()
}

/// The names in the controller's topic table, in creation order.
async fn table_names(test: &TestCluster) -> Vec<String> {
    let table = test.cluster.topics().await.expect("the controller's table");
    table
        .topics()
        .iter()
        .map(|topic| topic.name.clone())
        .collect()
}

/// Goal: a topic created at run time through librdkafka's AdminClient is served as one
/// declared at start, and survives restarts. Method: a cluster of 6 partition slots serving
/// `orders`; create `fresh` (3 partitions), then again (TOPIC_ALREADY_EXISTS); validate
/// `probe` only (no error, not created); create `twin` through brokers 2 and 3 at once (one
/// is created, the other told it exists); ask for 2 partitions with 1 slot left
/// (INVALID_PARTITIONS, saying 1 is left). An idempotent acks=all producer writes 600
/// records to `fresh`; a consumer reads each once, in order per partition, from all three;
/// kcat lists every topic. Then the controller and broker 3 are killed, broker 3 restarts
/// while the controller is down and still lists `fresh` from its own copy of the table; the
/// controller restarts with its table, and every record is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_creates_a_topic_at_run_time_that_survives_restarts() {
    require_confluent_kafka();
    require_kcat();
    let mut test = TestCluster::start_with_topics(3, &[], &[TOPIC], Some(6)).await;
    let bootstrap = bootstrap(&test);
    let created = create_topic(&bootstrap, "fresh", 3, false).await;
    assert_eq!(created["error"], Value::Null, "created: {created}");
    let again = create_topic(&bootstrap, "fresh", 3, false).await;
    assert_eq!(again["error"], "TOPIC_ALREADY_EXISTS", "{again}");
    let probed = create_topic(&bootstrap, "probe", 2, true).await;
    assert_eq!(probed["error"], Value::Null, "valid: {probed}");
    let kafka = test.cluster.kafka_addresses().clone();
    let (through_2, through_3) = tokio::join!(
        create_topic(&kafka[&2], "twin", 1, false),
        create_topic(&kafka[&3], "twin", 1, false)
    );
    let mut twins = [through_2["error"].clone(), through_3["error"].clone()];
    twins.sort_by_key(|error| error.to_string());
    assert_eq!(twins, [Value::from("TOPIC_ALREADY_EXISTS"), Value::Null]);
    let over = create_topic(&bootstrap, "more", 2, false).await;
    assert_eq!(over["error"], "INVALID_PARTITIONS", "{over}");
    let message = over["message"].as_str().expect("a message");
    assert!(message.contains("2 partitions asked, 1 left"), "{message}");
    let names = table_names(&test).await;
    assert_eq!(names, [TOPIC, "fresh", "twin"], "probe was only validated");

    let (producer, lines) = start_producer_to(&bootstrap, "fresh", 600, 200).await;
    let summary = finish_producer(producer, lines).await;
    let consumed = consume_partitions(&bootstrap, "fresh", 600, 3).await;
    let records = consumed["records"].as_array().expect("records");
    let per_partition = assert_exactly_once_in_order_per_partition(&summary, records, 600);
    assert_eq!(
        per_partition.len(),
        3,
        "every partition of fresh: {per_partition:?}"
    );
    let listed = kcat_topics(&bootstrap).await;
    let expected = BTreeMap::from([(TOPIC.into(), 1), ("fresh".into(), 3), ("twin".into(), 1)]);
    assert_eq!(listed, expected);

    test.cluster
        .kill_controller()
        .await
        .expect("kill the controller");
    test.cluster.kill_broker(3).await.expect("kill broker 3");
    test.cluster
        .restart_broker(3, &[])
        .await
        .expect("broker 3 restarts");
    let listed = kcat_topics(&kafka[&3]).await;
    assert_eq!(
        listed.get("fresh"),
        Some(&3),
        "broker 3's own table: {listed:?}"
    );
    test.cluster
        .restart_controller()
        .await
        .expect("the controller restarts");
    assert_eq!(table_names(&test).await, [TOPIC, "fresh", "twin"]);
    let consumed = consume_partitions(&bootstrap, "fresh", 600, 3).await;
    let records = consumed["records"].as_array().expect("records");
    assert_exactly_once_in_order_per_partition(&summary, records, 600);
}

/// Goal: several topics declared at start (`--topic a:2 --topic b`) go through the same
/// topic table and are each served: records produced to each are read back exactly once,
/// in order per partition, from its own partitions. Method: 400 records to `a`, 200 to `b`
/// (idempotent, acks=all), one consumer per topic; kcat lists both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_topics_declared_at_start_are_each_served() {
    require_confluent_kafka();
    require_kcat();
    let test = TestCluster::start_with_topics(3, &[], &["a:2", "b"], None).await;
    assert_eq!(test.cluster.partitions().len(), 2, "slots 1 and 2");
    let bootstrap = bootstrap(&test);
    for (topic, count, partitions) in [("a", 400, 2), ("b", 200, 1)] {
        let (producer, lines) = start_producer_to(&bootstrap, topic, count, count / 4).await;
        let summary = finish_producer(producer, lines).await;
        let consumed = consume_partitions(&bootstrap, topic, count as usize, partitions).await;
        let records = consumed["records"].as_array().expect("records");
        let per_partition = assert_exactly_once_in_order_per_partition(&summary, records, count);
        assert_eq!(
            per_partition.len(),
            partitions as usize,
            "{topic}: {per_partition:?}"
        );
    }
    let listed = kcat_topics(&bootstrap).await;
    assert_eq!(listed, BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
    assert_eq!(table_names(&test).await, ["a", "b"]);
}
