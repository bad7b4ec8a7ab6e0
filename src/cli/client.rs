//! `insync produce`, `insync consume`, `insync inspect`: the command-line client.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use insync_impl::client::{idle, ClientConfig, Consumer, ControlClient, ProduceAcks, Producer};
use insync_impl::core::PRODUCE_RECORDS_MAX;
use insync_impl::node::config::DEFAULT_CLUSTER_ID;
use insync_impl::node::control_token::{ControlToken, CONTROL_TOKEN_FILE_NAME};
use insync_impl::protocol::Record;

/// Where a client connects.
#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Any node(s) of the cluster, comma-separated: the controller or a broker. The client asks
    /// it where the leader is and follows leader changes by itself.
    #[arg(long, value_delimiter = ',', required = true)]
    pub bootstrap: Vec<String>,
    #[arg(long, default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Give up on a batch (or a read) not answered within this long, retries included.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub timeout_ms: u64,
}

impl ConnectArgs {
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.bootstrap.clone(), self.cluster_id.clone());
        config.delivery_timeout = Duration::from_millis(self.timeout_ms);
        config
    }
}

#[derive(Args)]
#[command(after_help = "Acks:\n  \
    all  answered once the record is committed (below the high watermark: on every ISR member)\n  \
    1    answered once the leader appended it (lost if the leader dies before replicating)\n  \
    0    not answered at all: sent as acks=1 and not waited for, nor retried\n\n\
    The producer is idempotent: a producer id and per-record sequence numbers let the leader \
    recognise a retried batch, so a retry after a lost acknowledgement never duplicates a record.\n\
    Without VALUEs, each line of standard input is one record.")]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long, default_value = "all", value_name = "0|1|all")]
    pub acks: ProduceAcks,
    /// Records per produce request (at most 512).
    #[arg(long, default_value_t = PRODUCE_RECORDS_MAX as u32)]
    pub batch: u32,
    /// One JSON object per acknowledged batch on stdout.
    #[arg(long)]
    pub json: bool,
    /// The records (UTF-8 text); read from standard input when absent.
    pub values: Vec<String>,
}

#[derive(Args)]
#[command(
    after_help = "Only committed records are ever returned: the leader serves records below \
    its high watermark, so nothing read here can be lost by a later leader change."
)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// First offset to read.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Keep waiting for new records instead of stopping at the end of what is committed.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per record on stdout (offset, leader_epoch, producer_id, sequence, value).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Inspect needs the operator's control token. After `insync cluster up \
    --dir DIR`, give the same --dir (default: insync-data); for a node started by hand, \
    --control-token-file DATA_DIR/control.token (or the file it was given)."
)]
pub struct InspectArgs {
    /// The node to ask (controller or broker address).
    #[arg(long)]
    pub node: String,
    /// The directory of `insync cluster up`, whose control.token every node was given.
    #[arg(long, default_value = "insync-data")]
    pub dir: PathBuf,
    /// The control token file (overrides --dir).
    #[arg(long, value_name = "PATH")]
    pub control_token_file: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Print JSON instead of Rust debug notation.
    #[arg(long)]
    pub json: bool,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn run_produce(args: ProduceArgs) -> i32 {
    if args.batch == 0 || args.batch as usize > PRODUCE_RECORDS_MAX {
        eprintln!("error: --batch must be within 1..={PRODUCE_RECORDS_MAX}");
        return 2;
    }
    let values: Vec<Vec<u8>> = if args.values.is_empty() {
        let stdin = std::io::stdin();
        stdin
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(String::into_bytes)
            .collect()
    } else {
        args.values
            .iter()
            .map(|value| value.clone().into_bytes())
            .collect()
    };
    if values.is_empty() {
        return 0;
    }
    runtime().block_on(produce(args, values))
}

async fn produce(args: ProduceArgs, values: Vec<Vec<u8>>) -> i32 {
    let mut producer = Producer::new(args.connect.config(), args.acks);
    let mut code = 0;
    for batch in values.chunks(args.batch as usize) {
        let count = batch.len();
        match producer.send_batch(batch.to_vec()).await {
            Ok(first_offset) => print_ack(args.json, args.acks, first_offset, count),
            Err(error) => {
                eprintln!("error: {error}");
                code = 1;
                break;
            }
        }
    }
    producer.close().await;
    code
}

fn print_ack(json: bool, acks: ProduceAcks, first_offset: Option<u64>, count: usize) {
    match (json, first_offset) {
        (true, offset) => println!(
            "{}",
            serde_json::json!({ "first_offset": offset, "records": count })
        ),
        (false, Some(offset)) => {
            let last = offset + count as u64 - 1;
            println!("acknowledged {count} record(s) at offsets {offset}..={last} ({acks:?})");
        }
        (false, None) => println!("sent {count} record(s) without waiting (acks=0)"),
    }
}

pub fn run_consume(args: ConsumeArgs) -> i32 {
    runtime().block_on(consume(args))
}

async fn consume(args: ConsumeArgs) -> i32 {
    let mut consumer = Consumer::new(args.connect.config(), args.from);
    loop {
        let records = match consumer.poll().await {
            Ok(records) => records,
            Err(error) => {
                eprintln!("error: {error}");
                return 1;
            }
        };
        for record in &records {
            print_record(args.json, record);
        }
        if records.is_empty() {
            if !args.follow {
                return 0;
            }
            idle(Duration::from_millis(100)).await;
        }
    }
}

fn print_record(json: bool, record: &Record) {
    let value = String::from_utf8_lossy(&record.value);
    if json {
        let line = serde_json::json!({
            "offset": record.offset,
            "leader_epoch": record.leader_epoch,
            "producer_id": record.producer_id,
            "sequence": record.sequence,
            "value": value,
        });
        println!("{line}");
    } else {
        println!("{}\t{}", record.offset, value);
    }
}

pub fn run_inspect(args: InspectArgs) -> i32 {
    let path =
        (args.control_token_file.clone()).unwrap_or_else(|| args.dir.join(CONTROL_TOKEN_FILE_NAME));
    let token = match ControlToken::read(&path) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: {error}");
            eprintln!("(inspect acts as the operator: see `insync inspect --help`)");
            return 1;
        }
    };
    runtime().block_on(async {
        let connect = ControlClient::connect_with_token(&args.node, &args.cluster_id, &token);
        let mut control = match connect.await {
            Ok(control) => control,
            Err(error) => {
                eprintln!("error: {error}");
                return 1;
            }
        };
        match control.inspect().await {
            Ok(snapshot) if args.json => match serde_json::to_string_pretty(&snapshot) {
                Ok(text) => {
                    println!("{text}");
                    0
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    1
                }
            },
            Ok(snapshot) => {
                println!("{snapshot:#?}");
                0
            }
            Err(error) => {
                eprintln!("error: {error}");
                1
            }
        }
    })
}
