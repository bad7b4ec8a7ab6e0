//! `insync controller`, `insync broker`, `insync cluster up`: run the reference implementation.
//!
//! Every process takes the same protocol flags (`--variant`, `--unclean`, `--min-isr`,
//! `--fsync`, `--cluster-id`, `--stepped`) and clock flags; all processes of one cluster must
//! be given the same values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use insync_impl::core::{ProtocolConfig, Variant};
use insync_impl::kafka::partitions::PARTITIONS_MAX;
use insync_impl::kafka::{KafkaConfig, TopicSpec, DEFAULT_TOPIC};
use insync_impl::node::broker::run_broker_with_kafka;
use insync_impl::node::config::{parse_peers, DEFAULT_CLUSTER_ID};
use insync_impl::node::controller::run_controller_partitions;
use insync_impl::node::local_cluster::{ChildLogs, LocalCluster, LocalClusterSpec};
use insync_impl::node::shutdown::termination_signal;
use insync_impl::node::{
    BrokerConfig, ControllerConfig, NodeOptions, PartitionNodes, Timing, TopicsConfig,
};
use insync_impl::protocol::BrokerId;
use insync_impl::storage::FsyncPolicy;

/// The protocol variants, as `docs/protocol.md` §5 and the model name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VariantArg {
    /// Current Kafka: fetch fencing, divergence at the leader, ELR, HW only with min ISR.
    #[value(name = "kip-966")]
    Kip966,
    /// Leader epochs in fetches (fencing) and divergence detection at the leader.
    #[value(name = "kip-320")]
    Kip320,
    /// Epoch lookup: the largest epoch <= the requested one.
    #[value(name = "kip-279")]
    Kip279,
    /// Epoch lookup: the end of the requested epoch.
    #[value(name = "kip-101")]
    Kip101,
    /// Pre-KIP-101: a new follower truncates to its own high watermark.
    #[value(name = "hw-truncation")]
    HwTruncation,
}

impl VariantArg {
    pub fn name(self) -> &'static str {
        match self {
            VariantArg::Kip966 => "kip-966",
            VariantArg::Kip320 => "kip-320",
            VariantArg::Kip279 => "kip-279",
            VariantArg::Kip101 => "kip-101",
            VariantArg::HwTruncation => "hw-truncation",
        }
    }

    fn variant(self) -> Variant {
        match self {
            VariantArg::Kip966 => Variant::Kip966,
            VariantArg::Kip320 => Variant::Kip320,
            VariantArg::Kip279 => Variant::Kip279,
            VariantArg::Kip101 => Variant::Kip101,
            VariantArg::HwTruncation => Variant::HwTruncation,
        }
    }
}

/// Flags every process of a cluster shares.
#[derive(Args, Clone, Debug)]
pub struct ProtocolArgs {
    /// Protocol variant (docs/protocol.md §5).
    #[arg(long, value_enum, default_value_t = VariantArg::Kip966)]
    pub variant: VariantArg,
    /// Allow electing a leader outside the ISR when no ISR member is available (may lose
    /// committed records: the model shows how). `--unclean` alone means on; `--unclean on|off`
    /// as in `insync check`.
    #[arg(
        long,
        value_name = "on|off",
        num_args = 0..=1,
        default_value = "off",
        default_missing_value = "on",
        value_parser = parse_switch
    )]
    pub unclean: bool,
    /// min.insync.replicas: acks=all produce is refused with NotEnoughReplicas below it.
    /// Default: 2 with 3 or more brokers, else 1.
    #[arg(long, value_name = "N")]
    pub min_isr: Option<u32>,
    /// When appends reach disk: `always` (fsync each append before answering) or `lazy`
    /// (background flush; durability from replication, Kafka's default).
    #[arg(long, default_value = "lazy", value_name = "always|lazy")]
    pub fsync: FsyncPolicy,
    /// Every process and client of one cluster must agree on it; others are refused.
    #[arg(long, default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Conformance mode: no timer fires by itself; the control channel fires timers. Without
    /// it, FireTimer and Barrier are refused.
    #[arg(long)]
    pub stepped: bool,
    /// Record every input the node's core handles, with what it sent and wrote and the state
    /// after it, in DIR (one file per node; `cluster up` passes it to every node). Check the
    /// run against the model with `insync validate DIR`.
    #[arg(long, value_name = "DIR")]
    pub trace_log: Option<PathBuf>,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// `on`/`off` (also `true`/`false`), as the model's switches are spelled.
fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("expected on or off, not {other:?}")),
    }
}

/// Real-time clocks (ignored with --stepped).
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// Broker: heartbeat period.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub heartbeat_interval_ms: u64,
    /// Controller: a broker silent this long is fenced (Expire) and leaves the ISR.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub session_timeout_ms: u64,
    /// Leader: a follower not caught up for this long is removed from the ISR (Lag).
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub replica_lag_time_max_ms: u64,
    /// Follower: an unanswered fetch is sent again after this long.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub fetch_timeout_ms: u64,
    /// Leader: a parked (caught-up) fetch is answered empty after this long.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub fetch_max_wait_ms: u64,
    /// Follower: stopped by a fencing answer, it fetches again after this long.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    pub fetch_backoff_ms: u64,
    /// Broker with --fsync lazy: background flush period.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub flush_interval_ms: u64,
}

impl TimingArgs {
    fn timing(&self) -> Timing {
        Timing {
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            replica_lag_time_max: Duration::from_millis(self.replica_lag_time_max_ms),
            fetch_timeout: Duration::from_millis(self.fetch_timeout_ms),
            fetch_max_wait: Duration::from_millis(self.fetch_max_wait_ms),
            fetch_backoff: Duration::from_millis(self.fetch_backoff_ms),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
        }
    }

    fn flags(&self) -> Vec<String> {
        let pairs = [
            ("--heartbeat-interval-ms", self.heartbeat_interval_ms),
            ("--session-timeout-ms", self.session_timeout_ms),
            ("--replica-lag-time-max-ms", self.replica_lag_time_max_ms),
            ("--fetch-timeout-ms", self.fetch_timeout_ms),
            ("--fetch-max-wait-ms", self.fetch_max_wait_ms),
            ("--fetch-backoff-ms", self.fetch_backoff_ms),
            ("--flush-interval-ms", self.flush_interval_ms),
        ];
        pairs
            .iter()
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect()
    }
}

impl ProtocolArgs {
    fn options(&self, brokers: Vec<BrokerId>) -> NodeOptions {
        let default_min_isr = if brokers.len() >= 3 { 2 } else { 1 };
        NodeOptions {
            cluster_id: self.cluster_id.clone(),
            protocol: ProtocolConfig {
                variant: self.variant.variant(),
                unclean_leader_election: self.unclean,
                min_insync_replicas: self.min_isr.unwrap_or(default_min_isr),
                brokers,
            },
            fsync: self.fsync,
            stepped: self.stepped,
            timing: self.timing.timing(),
            control_token_file: None,
            trace_log: self.trace_log.clone(),
        }
    }

    /// The same settings as flags for child processes (the cluster id is passed apart).
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--variant".to_string(),
            self.variant.name().to_string(),
            "--fsync".to_string(),
            self.fsync.to_string(),
        ];
        if self.unclean {
            flags.extend(["--unclean".to_string(), "on".to_string()]);
        }
        if let Some(min_isr) = self.min_isr {
            flags.extend(["--min-isr".to_string(), min_isr.to_string()]);
        }
        if self.stepped {
            flags.push("--stepped".into());
        }
        if let Some(dir) = &self.trace_log {
            // Absolute, so every child writes into the same directory wherever it runs.
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            flags.extend(["--trace-log".to_string(), dir.display().to_string()]);
        }
        flags.extend(self.timing.flags());
        flags
    }
}

#[derive(Args)]
#[command(after_help = "Example (three brokers on one machine):\n  \
    insync controller --listen 127.0.0.1:9000 --brokers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 --data-dir /tmp/insync/controller\n\n\
    The controller persists the view, the fenced set and the ELR (fsync before it sends), so a \
    restarted controller resumes the same view. It fences a broker whose heartbeats stop for \
    --session-timeout-ms and elects a new leader if needed.\n\n\
    It owns the topic table (DATA_DIR/topics.table, made from the --topic flags on a fresh \
    start; the persisted one wins after): CreateTopics through any broker's Kafka listener \
    creates a topic on free partition slots (--partition-nodes), persisted before the answer.")]
pub struct ControllerArgs {
    /// Address to listen on (brokers, the control channel).
    #[arg(long)]
    pub listen: String,
    /// Every broker: ID=ADDR,ID=ADDR,...
    #[arg(long, value_name = "1=ADDR,2=ADDR,...")]
    pub brokers: String,
    /// Where the controller's state is persisted (locked: one process per directory).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The operator's control token; created owner-only when absent. Default:
    /// DATA_DIR/control.token.
    #[arg(long, value_name = "PATH")]
    pub control_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub partitions: PartitionArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Print the bound address as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

#[derive(Args)]
#[command(after_help = "Example:\n  \
    insync broker --id 1 --listen 127.0.0.1:9001 --controller 127.0.0.1:9000 --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 --data-dir /tmp/insync/broker-1\n\n\
    A data directory without a log is the first start of a fresh cluster (the broker installs \
    the initial view: leader 1, epoch 1, everyone in the ISR); otherwise the broker recovers its \
    log (cutting it at the first torn or corrupt record) and registers with the controller.")]
pub struct BrokerArgs {
    /// This broker's id (1, 2, ...).
    #[arg(long)]
    pub id: BrokerId,
    /// Address to listen on (peers, clients, the control channel).
    #[arg(long)]
    pub listen: String,
    /// The controller's address.
    #[arg(long)]
    pub controller: String,
    /// Every broker of the partition (this one's entry may be included): ID=ADDR,...
    #[arg(long, value_name = "1=ADDR,2=ADDR,...")]
    pub peers: String,
    /// Where the log and checkpoints live (locked: one process per directory).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The operator's control token; created owner-only when absent. Default:
    /// DATA_DIR/control.token.
    #[arg(long, value_name = "PATH")]
    pub control_token_file: Option<PathBuf>,
    /// Conformance: before opening the log, cut it back to what was durable (a power loss).
    #[arg(long, hide = true)]
    pub simulate_power_loss_on_start: bool,
    /// Also serve the Kafka protocol here, for Kafka's own clients (librdkafka, kcat):
    /// docs/kafka.md.
    #[arg(long, value_name = "ADDR")]
    pub kafka_listen: Option<String>,
    /// Every broker's Kafka address as clients reach it (Metadata answers with these; this
    /// broker's defaults to --kafka-listen): ID=ADDR,...
    #[arg(long, value_name = "1=ADDR,2=ADDR,...", requires = "kafka_listen")]
    pub kafka_peers: Option<String>,
    #[command(flatten)]
    pub partitions: PartitionArgs,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Print the bound address as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

/// Where partition slots after 0 are served, on the controller and on every broker.
#[derive(Args, Clone, Debug)]
pub struct PartitionArgs {
    /// Partition slot P (1, 2, ...) is served at these addresses: its controller core (0)
    /// and every broker, each on a port of its own; once for each slot after 0, in order, at
    /// most 32 slots in all (`insync cluster up` passes them). Which topic's partition a slot
    /// serves is the topic table's say; a slot no topic uses binds nothing. Slot 0 is served
    /// at --listen, as a cluster of one partition is. Slot P keeps its state in
    /// DATA_DIR/partition-P/.
    #[arg(long = "partition-nodes", value_name = "P/0=ADDR,1=ADDR,...")]
    pub partition_nodes: Vec<String>,
}

impl PartitionArgs {
    /// Every `--partition-nodes`, parsed (their count and order are checked by the node).
    fn parsed(&self) -> Result<Vec<PartitionNodes>, String> {
        let parsed = self
            .partition_nodes
            .iter()
            .map(|text| PartitionNodes::parse(text));
        parsed
            .collect::<Result<_, _>>()
            .map_err(|error| error.to_string())
    }
}

/// The topics a fresh cluster starts with.
#[derive(Args, Clone, Debug)]
pub struct TopicArgs {
    /// A Kafka topic of the fresh cluster: NAME, or NAME:PARTITIONS (replication factor =
    /// every broker); repeatable (`--topic a:3 --topic b`), at most 32 partitions in all. The
    /// topics make the topic table, partitions taking slots in order (slot 0 is the first
    /// topic's partition 0); after a restart the persisted table wins. Each partition is its
    /// own instance of the checked protocol: its own leader, epochs, ISR, HW and log
    /// (docs/protocol.md §7). More are created at run time with Kafka's CreateTopics.
    #[arg(long, default_value = DEFAULT_TOPIC, value_name = "NAME[:PARTITIONS]")]
    pub topic: Vec<String>,
}

impl TopicArgs {
    /// Every `--topic`, parsed (names unique, slots enough: checked by the table).
    fn specs(&self) -> Result<Vec<TopicSpec>, String> {
        let parsed = self.topic.iter().map(|text| TopicSpec::parse(text));
        parsed
            .collect::<Result<_, _>>()
            .map_err(|error| error.to_string())
    }

    fn slots_used(&self) -> Result<u32, String> {
        Ok(self.specs()?.iter().map(|spec| spec.partitions).sum())
    }
}

/// `cluster up`'s default partition slots: enough to create a few topics in a demo.
const PARTITION_SLOTS_DEFAULT: u32 = 16;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start a controller and N brokers on loopback as child processes; Ctrl-C stops them.
    Up(ClusterUpArgs),
}

#[derive(Args)]
#[command(after_help = "Then, in another terminal:\n  \
    insync produce --bootstrap <controller address> hello world\n  \
    insync consume --bootstrap <controller address> --follow")]
pub struct ClusterUpArgs {
    /// Number of brokers.
    #[arg(long, default_value_t = 3)]
    pub brokers: u32,
    /// Data directories and logs go here.
    #[arg(long, default_value = "insync-data")]
    pub dir: PathBuf,
    /// First port (controller), brokers on the next ones; default: free ports.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Print the addresses as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not serve the Kafka protocol (served by default, on ports of its own).
    #[arg(long)]
    pub no_kafka: bool,
    #[command(flatten)]
    pub topic: TopicArgs,
    /// Partition slots with addresses given out at start, slot 0 included (1 to 32; default
    /// 16, or what the --topic flags use if more): topics created at run time take free ones.
    /// Each slot costs a port per node, bound only once a topic uses it.
    #[arg(long, value_name = "N")]
    pub partition_slots: Option<u32>,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn print_bound(json: bool, role: &str, id: Option<BrokerId>, address: std::net::SocketAddr) {
    if json {
        let line = serde_json::json!({ "role": role, "id": id, "listen": address.to_string() });
        println!("{line}");
    } else {
        match id {
            Some(id) => println!("{role} {id} listening on {address}"),
            None => println!("{role} listening on {address}"),
        }
    }
}

pub fn run_controller_command(args: ControllerArgs) -> i32 {
    let brokers = match parse_peers(&args.brokers) {
        Ok(brokers) => brokers,
        Err(error) => return usage(&error.to_string()),
    };
    let mut options = args.protocol.options(brokers.keys().copied().collect());
    options.control_token_file = args.control_token_file;
    let config = ControllerConfig {
        listen: args.listen,
        brokers,
        data_dir: args.data_dir,
        options,
    };
    let topics = match topics_config(&args.topic, &args.partitions) {
        Ok(topics) => topics,
        Err(message) => return usage(&message),
    };
    let json = args.json;
    let result = runtime().block_on(run_controller_partitions(config, topics, |address| {
        print_bound(json, "controller", None, address)
    }));
    report(result)
}

pub fn run_broker_command(args: BrokerArgs) -> i32 {
    let mut peers = match parse_peers(&args.peers) {
        Ok(peers) => peers,
        Err(error) => return usage(&error.to_string()),
    };
    let kafka = match kafka_config(&args) {
        Ok(kafka) => kafka,
        Err(message) => return usage(&message),
    };
    peers.entry(args.id).or_insert_with(|| args.listen.clone());
    let mut options = args.protocol.options(peers.keys().copied().collect());
    options.control_token_file = args.control_token_file;
    let id = args.id;
    let config = BrokerConfig {
        id,
        listen: args.listen,
        controller: args.controller,
        peers,
        data_dir: args.data_dir,
        options,
        simulate_power_loss_on_start: args.simulate_power_loss_on_start,
    };
    let topics = match topics_config(&args.topic, &args.partitions) {
        Ok(topics) => topics,
        Err(message) => return usage(&message),
    };
    let json = args.json;
    let result = runtime().block_on(run_broker_with_kafka(
        config,
        kafka,
        topics,
        |address| print_bound(json, "broker", Some(id), address),
        |address| print_bound(json, "kafka", Some(id), address),
    ));
    report(result)
}

/// `--topic` and `--partition-nodes` as a process's topics and slot pool.
fn topics_config(topic: &TopicArgs, partitions: &PartitionArgs) -> Result<TopicsConfig, String> {
    Ok(TopicsConfig {
        topics: topic.specs()?,
        pool: partitions.parsed()?,
    })
}

/// `--kafka-listen` and `--kafka-peers` as the Kafka listener's configuration.
fn kafka_config(args: &BrokerArgs) -> Result<Option<KafkaConfig>, String> {
    let Some(listen) = &args.kafka_listen else {
        return Ok(None);
    };
    let mut advertised = match &args.kafka_peers {
        Some(peers) => parse_peers(peers).map_err(|error| format!("--kafka-peers: {error}"))?,
        None => BTreeMap::new(),
    };
    advertised.entry(args.id).or_insert_with(|| listen.clone());
    Ok(Some(KafkaConfig {
        listen: listen.clone(),
        advertised,
    }))
}

fn report(result: Result<(), insync_impl::node::NodeError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!(%error, "node failed");
            eprintln!("error: {error}");
            1
        }
    }
}

fn usage(message: &str) -> i32 {
    eprintln!("error: {message}");
    2
}

pub fn run_cluster(args: ClusterArgs) -> i32 {
    match args.command {
        ClusterCommand::Up(args) => runtime().block_on(cluster_up(args)),
    }
}

async fn cluster_up(args: ClusterUpArgs) -> i32 {
    if args.brokers == 0 {
        return usage("--brokers must be at least 1");
    }
    let slots = match partition_slots(&args) {
        Ok(slots) => slots,
        Err(message) => return usage(&message),
    };
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(error) => return usage(&format!("cannot find the insync binary: {error}")),
    };
    let spec = LocalClusterSpec {
        binary,
        brokers: args.brokers,
        dir: args.dir.clone(),
        cluster_id: args.protocol.cluster_id.clone(),
        node_args: args.protocol.flags(),
        broker_args: Vec::new(),
        base_port: args.base_port,
        logs: ChildLogs::Inherit,
        kafka_topics: match args.no_kafka {
            true => Vec::new(),
            false => args.topic.topic.clone(),
        },
        partition_slots: Some(slots),
    };
    let mut cluster = match LocalCluster::start(spec).await {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: cannot start the cluster: {error}");
            return 1;
        }
    };
    if let Err(error) = cluster.wait_ready(Duration::from_secs(20)).await {
        eprintln!("error: the cluster did not come up: {error}");
        cluster.stop(Duration::from_secs(2)).await;
        return 1;
    }
    // The controller's table: after a restart it, not the flags, says what is served.
    let topics = match args.no_kafka {
        true => Vec::new(),
        false => served_topics(&cluster).await,
    };
    print_cluster(&cluster, &args, &topics);
    tokio::select! {
        _ = termination_signal() => {}
        _ = watch_children(&mut cluster) => {}
    }
    eprintln!("stopping the cluster");
    cluster.stop(Duration::from_secs(5)).await;
    0
}

/// `--partition-slots`, or its default: at least what the topics at start use, at most
/// [`PARTITIONS_MAX`].
fn partition_slots(args: &ClusterUpArgs) -> Result<u32, String> {
    let used = args.topic.slots_used()?;
    let slots = args
        .partition_slots
        .unwrap_or(PARTITION_SLOTS_DEFAULT.max(used));
    if !(1..=PARTITIONS_MAX).contains(&slots) {
        return Err(format!("--partition-slots {slots}: 1 to {PARTITIONS_MAX}"));
    }
    if slots < used {
        return Err(format!(
            "--partition-slots {slots}: the --topic flags use {used}"
        ));
    }
    Ok(slots)
}

/// Every topic of the controller's table as `NAME:P`; the error when it does not answer.
async fn served_topics(cluster: &LocalCluster) -> Vec<String> {
    match cluster.topics().await {
        Ok(table) => table
            .topics()
            .iter()
            .map(|topic| format!("{}:{}", topic.name, topic.slots.len()))
            .collect(),
        Err(error) => vec![format!("(the controller's topic table: {error})")],
    }
}

fn print_cluster(cluster: &LocalCluster, args: &ClusterUpArgs, topics: &[String]) {
    let brokers: BTreeMap<BrokerId, String> = cluster.broker_addresses();
    if args.json {
        let line = serde_json::json!({
            "cluster_id": cluster.cluster_id(),
            "controller": cluster.controller_address(),
            "brokers": brokers,
            "bootstrap": cluster.bootstrap().join(","),
            "kafka": cluster.kafka_addresses(),
            "kafka_bootstrap": kafka_bootstrap(cluster),
            "topics": topics,
            "dir": args.dir.display().to_string(),
            "control_token_file": cluster.control_token_path().display().to_string(),
        });
        println!("{line}");
        return;
    }
    println!(
        "insync cluster {:?} is up ({})",
        cluster.cluster_id(),
        args.protocol.variant.name()
    );
    println!("  controller  {}", cluster.controller_address());
    for (id, address) in &brokers {
        println!("  broker {id}    {address}");
    }
    for (id, address) in cluster.kafka_addresses() {
        println!("  kafka {id}     {address}");
    }
    if !cluster.kafka_addresses().is_empty() {
        let slots = cluster.partitions().len() + 1;
        println!(
            "  topics      {} ({slots} partition slots; create more with Kafka's CreateTopics)",
            topics.join(" ")
        );
    }
    println!("  data        {}", args.dir.display());
    println!(
        "  control     {} (the operator's token; inspect and Ctrl-C use it)",
        cluster.control_token_path().display()
    );
    println!(
        "try: insync produce --bootstrap {} hello",
        cluster.controller_address()
    );
    println!(
        "     insync consume --bootstrap {} --follow",
        cluster.controller_address()
    );
    println!(
        "     insync inspect --dir {} --node {}",
        args.dir.display(),
        cluster.controller_address()
    );
    if !cluster.kafka_addresses().is_empty() {
        let first = topic_name(topics.first().unwrap_or(&args.topic.topic[0]));
        println!(
            "     kcat -b {} -t {first} -P   (then kcat -b ... -t {first} -C; docs/kafka.md)",
            kafka_bootstrap(cluster),
        );
        println!(
            "     kafka-topics.sh --bootstrap-server {} --create --topic fresh --partitions 3",
            kafka_bootstrap(cluster)
        );
    }
    println!("Ctrl-C stops the cluster.");
}

/// `NAME` of `NAME[:P]`.
fn topic_name(topic: &str) -> &str {
    topic.split_once(':').map_or(topic, |(name, _)| name)
}

/// The Kafka listeners as a client's `bootstrap.servers`.
fn kafka_bootstrap(cluster: &LocalCluster) -> String {
    let addresses: Vec<&str> = cluster
        .kafka_addresses()
        .values()
        .map(String::as_str)
        .collect();
    addresses.join(",")
}

/// Reports children that exit by themselves (a crash, or someone's `kill -9`: the rest of the
/// cluster keeps running, which is the point of a replicated log). Completes once none runs.
async fn watch_children(cluster: &mut LocalCluster) {
    while let Some((name, status)) = cluster.next_exit().await {
        eprintln!("{name} exited ({status}); the others keep running");
    }
    eprintln!("every node has exited");
}

/// Runs `command` with `tracing` logs on stderr, filtered by `RUST_LOG` (default `default`).
pub fn with_logs(default: &str, command: impl FnOnce() -> i32) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    command()
}
