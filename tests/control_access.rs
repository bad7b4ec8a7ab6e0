//! Who can do what on a node's control channel, and one process per data directory, shown on
//! real `insync` processes (docs/runtime.md, "Who can do what"):
//! - a node in real time refuses `FireTimer` and `Barrier`, even to the operator, and says so
//!   in its log;
//! - without the control token, `Shutdown` and `Inspect` are refused and the node keeps
//!   serving (`Metadata`, which clients need to find the leader, works for anyone); a wrong
//!   token is refused in the handshake; with the token, `Shutdown` stops the node cleanly;
//! - a second broker or controller on a data directory in use exits at once, non-zero,
//!   naming the directory and the holder's pid.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use insync_impl::client::{ClientError, ControlClient};
use insync_impl::node::control_token::ControlToken;
use insync_impl::protocol::{ControlRefusal, Timer};
use insync_impl::wire::WireError;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

const CLUSTER: &str = "control-test";
const WAIT: Duration = Duration::from_secs(20);

/// A node process and the address it printed.
struct Node {
    child: Child,
    address: String,
    /// Held open so the node never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

/// `insync controller` or `insync broker` (role `controller` or `broker`) in real time on
/// `data_dir`, stderr to `log`. Its peers' addresses lead nowhere: only the control channel is
/// exercised.
fn node_command(role: &str, data_dir: &Path, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insync"));
    command.arg(role);
    match role {
        "controller" => command.args(["--brokers", "1=127.0.0.1:9"]),
        _ => command.args([
            "--id",
            "1",
            "--controller",
            "127.0.0.1:9",
            "--peers",
            "1=127.0.0.1:9",
        ]),
    };
    let log = std::fs::File::create(log).expect("log file");
    command
        .args(["--listen", "127.0.0.1:0", "--json", "--cluster-id", CLUSTER])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    command
}

async fn start(role: &str, data_dir: &Path, log: &Path) -> Node {
    let mut child = node_command(role, data_dir, log)
        .spawn()
        .expect("insync starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    tokio::time::timeout(WAIT, read)
        .await
        .expect("address in time")
        .expect("stdout");
    let bound: serde_json::Value = serde_json::from_str(&line).expect("the bound address");
    let address = bound["listen"].as_str().expect("listen").to_owned();
    Node {
        child,
        address,
        _stdout: stdout,
    }
}

/// How `child` exits, which it must do within [`WAIT`].
async fn exited(child: &mut Child) -> ExitStatus {
    let wait = tokio::time::timeout(WAIT, child.wait());
    wait.await
        .expect("the process exits in time")
        .expect("wait")
}

fn token(data_dir: &Path) -> ControlToken {
    ControlToken::read(&ControlToken::default_path(data_dir)).expect("the node's token")
}

fn is_refusal(
    result: &Result<impl std::fmt::Debug, ClientError>,
    expected: ControlRefusal,
) -> bool {
    matches!(result, Err(ClientError::Refused { refusal, .. }) if *refusal == expected)
}

fn stepped_only(request: &str) -> ControlRefusal {
    ControlRefusal::SteppedOnly {
        request: request.into(),
    }
}

fn operator_only(request: &str) -> ControlRefusal {
    ControlRefusal::OperatorOnly {
        request: request.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_time_node_refuses_fire_timer_and_barrier_even_to_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["controller", "broker"] {
        let data_dir = dir.path().join(role);
        let log = dir.path().join(format!("{role}.log"));
        let mut node = start(role, &data_dir, &log).await;
        let token = token(&data_dir);
        let connect = ControlClient::connect_with_token(&node.address, CLUSTER, &token);
        let mut operator = connect.await.expect("the operator connects");
        let fired = operator.fire_timer(Timer::Expire(1)).await;
        assert!(
            is_refusal(&fired, stepped_only("FireTimer")),
            "{role}: {fired:?}"
        );
        let barrier = operator.barrier(BTreeMap::new(), WAIT).await;
        assert!(
            is_refusal(&barrier, stepped_only("Barrier")),
            "{role}: {barrier:?}"
        );
        operator
            .inspect()
            .await
            .expect("the connection and the node carry on");
        operator.shutdown().await.expect("the operator stops it");
        let status = exited(&mut node.child).await;
        assert!(status.success(), "{role} stops cleanly: {status}");
        let text = std::fs::read_to_string(&log).unwrap();
        let refused = text
            .lines()
            .filter(|line| line.contains("control request refused"));
        assert_eq!(
            refused.count(),
            2,
            "{role}: one log line per refusal:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_shutdown_is_refused_and_the_node_keeps_serving_with_it_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("controller");
    let mut node = start("controller", &data_dir, &dir.path().join("controller.log")).await;

    let mut stranger = ControlClient::connect(&node.address, CLUSTER)
        .await
        .expect("anonymous");
    let stopped = stranger.shutdown().await;
    assert!(
        is_refusal(&stopped, operator_only("Shutdown")),
        "{stopped:?}"
    );
    let inspected = stranger.inspect().await;
    assert!(
        is_refusal(&inspected, operator_only("Inspect")),
        "{inspected:?}"
    );
    let fired = stranger.fire_timer(Timer::Expire(1)).await;
    assert!(fired.is_err(), "{fired:?}");
    let metadata = stranger
        .metadata()
        .await
        .expect("anyone may find the leader");
    assert!(metadata.view.is_some(), "{metadata:?}");
    assert!(node.child.try_wait().unwrap().is_none(), "still running");

    let other_dir = tempfile::tempdir().unwrap();
    let wrong = ControlToken::load_or_create(&other_dir.path().join("token")).unwrap();
    let refused = ControlClient::connect_with_token(&node.address, CLUSTER, &wrong).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Wire {
                source: WireError::CredentialRefused,
                ..
            })
        ),
        "a wrong token is refused in the handshake: {refused:?}"
    );

    let mut later = ControlClient::connect(&node.address, CLUSTER)
        .await
        .expect("still serving");
    later.metadata().await.expect("still answering");
    let token = token(&data_dir);
    let connect = ControlClient::connect_with_token(&node.address, CLUSTER, &token);
    let mut operator = connect.await.expect("the operator connects");
    operator.inspect().await.expect("the operator inspects");
    operator.shutdown().await.expect("the operator stops it");
    let status = exited(&mut node.child).await;
    assert!(status.success(), "a clean stop: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_data_directory_in_use_exits_at_once_naming_it_and_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["broker", "controller"] {
        let data_dir = dir.path().join(format!("{role}-data"));
        let first = start(role, &data_dir, &dir.path().join(format!("{role}-1.log"))).await;
        let second_log = dir.path().join(format!("{role}-2.log"));
        let mut second = node_command(role, &data_dir, &second_log).spawn().unwrap();
        let status = exited(&mut second).await;
        assert!(
            !status.success(),
            "{role}: the second process fails: {status}"
        );
        let message = std::fs::read_to_string(&second_log).unwrap();
        let holder = first.child.id().expect("the first still runs");
        assert!(
            message.contains(&data_dir.display().to_string()),
            "{role}: {message}"
        );
        assert!(
            message.contains(&format!("pid {holder}")),
            "{role}: {message}"
        );

        let mut control = ControlClient::connect(&first.address, CLUSTER)
            .await
            .unwrap();
        control.metadata().await.expect("the holder is untouched");
    }
}
