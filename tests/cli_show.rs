//! A saved trace reopens from the file alone: `insync show FILE` prints it as numbered steps
//! in the protocol's words, and `insync explore --trace FILE` serves the Explorer on the
//! configuration of the trace's `#meta` and prints the URL of its path.
//!
//! Method: the committed KIP-279 counterexample (tests/traces/). `show` is compared with the
//! model's own description of the path the file records; `explore` is started on port 0, and
//! the test walks the printed URL through the Explorer's own API, as its page does, checking
//! that each step the server offers is the trace's step.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insync_conformance::trace::TraceFile;
use insync_model::{describe, InsyncModel};
use serde_json::Value;
use support::cli::insync;

const TRACE: &str = "tests/traces/counterexample-kip-279-strong_isr.json";

/// The model's own words for the trace's steps.
fn step_texts() -> Vec<String> {
    let file = TraceFile::read(Path::new(TRACE)).expect("the committed trace reads");
    let model = InsyncModel::new(file.meta.config);
    let trace = file.to_path(&model).expect("the model takes it");
    describe::describe_path(&model, &trace.path)
        .into_iter()
        .map(|s| s.text)
        .collect()
}

#[test]
fn show_prints_the_committed_trace_as_numbered_steps() {
    let (code, stdout, stderr) = insync(&["show", TRACE]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "counterexample of strong_isr: shortest counterexample for strong_isr (18 steps)"
    );
    assert!(lines[1].starts_with("configuration: variant=kip-279 brokers=3 "));
    let steps: Vec<&str> = lines
        .iter()
        .filter(|l| !l.starts_with("        ") && !l.trim_start().starts_with("0."))
        .filter_map(|l| l.trim_start().split_once(". "))
        .filter(|(n, _)| n.parse::<usize>().is_ok())
        .map(|(_, text)| text)
        .collect();
    assert_eq!(steps, step_texts());
    assert_eq!(
        steps[0], "controller: timer Expire(1) fires",
        "KIP-279 starts so"
    );
    assert!(stdout.contains("\nafter step 18: strong_isr violated\n"));
    assert!(stdout.ends_with(&format!("insync explore --trace {TRACE}\n")));
}

#[test]
fn show_draws_the_trace_as_mermaid() {
    let (code, stdout, _) = insync(&["show", TRACE, "--diagram", "mermaid"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("sequenceDiagram\n    title strong_isr\n"));
    for n in 1..=18 {
        assert!(stdout.contains(&format!(": {n}. ")), "step {n}");
    }
    assert!(!stdout.contains(": 19. "));
}

#[test]
fn show_refuses_a_missing_file_or_diagram_naming_it() {
    let (code, _, stderr) = insync(&["show", "no-such-trace.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-trace.json"), "{stderr}");
    let (code, _, stderr) = insync(&["show", TRACE, "--diagram", "svg"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("svg"));
}

/// Kills the Explorer when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on the Explorer, retrying the connection while the server starts (the URL is
/// printed just before it binds).
fn get(addr: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the Explorer never listened on {addr}: {e}"),
        }
    };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{path}: {head}"
    );
    serde_json::from_str(body).expect("JSON")
}

#[test]
fn explore_trace_serves_the_path_its_url_names() {
    let child = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(["explore", "--trace", TRACE, "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Explorer");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    let url = BufReader::new(stdout)
        .lines()
        .map(|l| l.expect("stdout"))
        .find(|l| l.starts_with("http://"))
        .expect("a URL line");
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, steps) = rest.split_once("/#/steps/").expect("a path URL");
    assert!(!addr.ends_with(":0"), "port 0 was replaced: {addr}");
    let indices: Vec<usize> = steps.split('/').map(|i| i.parse().unwrap()).collect();
    let texts = step_texts();
    assert_eq!(
        indices.len(),
        texts.len() + 1,
        "the initial state, then each step"
    );
    // As the Explorer's page does: the successors of each prefix, then the chosen one.
    let mut prefix = String::new();
    for (n, index) in indices.iter().enumerate() {
        let offered = get(addr, &format!("/.states{prefix}"));
        let chosen = offered
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["actionIndex"] == *index)
            .unwrap_or_else(|| panic!("step {n}: index {index} offered"));
        assert!(chosen["state"].is_string(), "step {n} leads somewhere");
        if n > 0 {
            assert_eq!(chosen["action"], texts[n - 1].as_str(), "step {n}");
        }
        prefix.push_str(&format!("/{index}"));
    }
    let last = get(addr, &format!("/.states{prefix}"));
    assert!(last.is_array(), "the path's last state is served");
}
