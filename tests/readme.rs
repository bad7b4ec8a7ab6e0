//! The README cannot drift from the code: every command in its `console` blocks is run here
//! (or, for `cargo test` commands, checked to be exactly what `.ci/run` runs).
//!
//! Method: collect the `$ ` lines of every ```console block in order, map
//! `cargo run --release -- ARGS` onto the `insync` binary this test was built with, and run
//! each one. A trailing `# exits N` comment states the expected exit code (default 0).
//! Long-running commands are handled by what they serve: `explore` until its HTTP endpoint
//! answers, `cluster up` until it prints that it is up, after which the commands that follow
//! run against it and the cluster is stopped with Ctrl-C (SIGINT) and must exit cleanly.
//! A command this test does not know how to run fails the test, so a new README command
//! needs a decision here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");
const CI_RUN: &str = include_str!("../.ci/run");
const RUN_PREFIX: &str = "cargo run --release -- ";
const TEST_COMMAND: &str = "cargo test --workspace --profile checked";
const SERVE_DEADLINE: Duration = Duration::from_secs(120);

/// One `$ ` line of the README.
struct ReadmeCommand {
    line: String,
    expected_exit: i32,
}

fn readme_commands() -> Vec<ReadmeCommand> {
    let mut commands = Vec::new();
    let mut in_console = false;
    for line in README.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_console = !in_console && trimmed == "```console";
            continue;
        }
        let Some(command) = trimmed.strip_prefix("$ ").filter(|_| in_console) else {
            continue;
        };
        let (command, comment) = match command.split_once(" # ") {
            Some((command, comment)) => (command.trim(), comment.trim()),
            None => (command.trim(), ""),
        };
        let expected_exit = comment
            .strip_prefix("exits ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .map(|code| code.parse().expect("`# exits N` names a number"))
            .unwrap_or(0);
        commands.push(ReadmeCommand {
            line: command.to_owned(),
            expected_exit,
        });
    }
    commands
}

fn insync(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insync"));
    command.args(args).stdin(Stdio::null());
    command
}

/// Kills a long-running child however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_to_completion(command: &ReadmeCommand, args: &[String]) {
    let output = insync(args).output().expect("insync starts");
    let code = output.status.code().unwrap_or(-1);
    assert_eq!(
        code,
        command.expected_exit,
        "README command `{}` exited {code}, expected {}\nstdout:\n{}\nstderr:\n{}",
        command.line,
        command.expected_exit,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// `explore` serves until killed: it passes once its status endpoint answers HTTP 200.
fn run_explore(command: &ReadmeCommand, args: &[String]) {
    let addr = flag_value(args, "--addr").unwrap_or("127.0.0.1:3000");
    let _child = Running(insync(args).stdout(Stdio::null()).spawn().expect("starts"));
    let deadline = Instant::now() + SERVE_DEADLINE;
    loop {
        if let Some(status_line) = http_get_status_line(addr, "/.status") {
            assert!(
                status_line.contains(" 200 "),
                "`{}`: /.status answered {status_line}",
                command.line
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{}` did not serve within {SERVE_DEADLINE:?}",
            command.line
        );
        std::thread::sleep(Duration::from_millis(100)); // polling a server that is starting
    }
}

fn http_get_status_line(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().next().map(str::to_owned)
}

/// `cluster up` runs until Ctrl-C: wait for its "up" banner, return it running.
fn start_cluster(command: &ReadmeCommand, args: &[String]) -> Running {
    if let Some(dir) = flag_value(args, "--dir") {
        let _ = std::fs::remove_dir_all(Path::new(dir)); // a previous run's data
    }
    let mut child = insync(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cluster starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let running = Running(child);
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("Ctrl-C stops the cluster") => break,
            Some(Ok(_)) => continue,
            _ => panic!("`{}` ended before it was up", command.line),
        }
    }
    // Keep draining stdout so the cluster never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    running
}

fn stop_cluster(mut cluster: Running) {
    let pid = cluster.0.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    assert!(sent.map(|s| s.success()).unwrap_or(false), "SIGINT sent");
    let status = cluster.0.wait().expect("cluster exits");
    assert!(
        status.success(),
        "cluster up exits cleanly on Ctrl-C: {status}"
    );
}

#[test]
fn readme_test_commands_are_what_ci_runs() {
    let commands = readme_commands();
    assert!(
        commands.iter().any(|c| c.line == TEST_COMMAND),
        "README shows `{TEST_COMMAND}`"
    );
    for command in commands
        .iter()
        .filter(|c| c.line.starts_with("cargo test "))
    {
        assert!(
            CI_RUN.lines().any(|line| line.trim() == command.line),
            ".ci/run runs the README's `{}` exactly",
            command.line
        );
    }
}

#[test]
fn every_readme_command_runs() {
    let commands = readme_commands();
    assert!(commands.len() >= 8, "found the README's commands");
    let mut cluster: Option<Running> = None;
    for command in &commands {
        if command.line.starts_with("cargo test ") {
            continue; // test commands: .ci/run runs them (see the test above)
        }
        let rest = command.line.strip_prefix(RUN_PREFIX).unwrap_or_else(|| {
            panic!(
                "README command `{}` has no runner in this test",
                command.line
            )
        });
        let args: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
        match args.first().map(String::as_str) {
            Some("explore") => run_explore(command, &args),
            Some("cluster") => cluster = Some(start_cluster(command, &args)),
            _ => run_to_completion(command, &args),
        }
    }
    if let Some(cluster) = cluster {
        stop_cluster(cluster);
    }
}
