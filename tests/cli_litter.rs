//! Long commands leave nothing behind: what a run writes for itself (node data directories,
//! logs, the traces it replays) it removes, and it writes elsewhere only what `--out` asks.
//!
//! Method: each command runs with `TMPDIR` set to a fresh directory and its working directory
//! another; afterwards both must be empty (and `--out`, when given, holds the traces).

use std::path::Path;
use std::process::Command;

/// Runs insync in `cwd` with `TMPDIR=tmp`; returns the exit code and stderr.
fn insync_in(cwd: &Path, tmp: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .output()
        .expect("run insync");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

const SMALL_COVER: &[&str] = &[
    "conform",
    "--source",
    "cover",
    "--crashes",
    "1",
    "--expiries",
    "0",
    "--isr-shrinks",
    "0",
    "--reads",
    "0",
    "--retries",
    "0",
    "--traces-max",
    "4",
];

#[test]
fn conform_from_a_source_writes_nothing_unless_asked() {
    let (cwd, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (code, stderr) = insync_in(cwd.path(), tmp.path(), SMALL_COVER);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("capped at 4 traces"), "{stderr}");
    assert_eq!(
        entries(tmp.path()),
        Vec::<String>::new(),
        "TMPDIR is left empty"
    );
    assert_eq!(
        entries(cwd.path()),
        Vec::<String>::new(),
        "nothing in the working directory"
    );
}

#[test]
fn conform_and_traces_write_into_out_only() {
    let (cwd, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args = SMALL_COVER.to_vec();
    args.extend(["--out", "kept"]);
    let (code, stderr) = insync_in(cwd.path(), tmp.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        entries(&cwd.path().join("kept")).len(),
        4,
        "the traces asked for"
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
    let mut args = vec!["traces"];
    args.extend(&SMALL_COVER[1..]);
    args.extend(["--out", "written"]);
    let (code, stderr) = insync_in(cwd.path(), tmp.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(entries(&cwd.path().join("written")).len(), 4);
    let mut left = entries(cwd.path());
    left.sort();
    assert_eq!(left, ["kept", "written"]);
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn bench_removes_its_cluster() {
    let (cwd, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "bench",
        "--records",
        "256",
        "--sizes",
        "100",
        "--fsync",
        "lazy",
        "--brokers",
        "2",
        "--producers",
        "1",
        "--batch",
        "64",
    ];
    let (code, stderr) = insync_in(cwd.path(), tmp.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        entries(tmp.path()),
        Vec::<String>::new(),
        "TMPDIR is left empty"
    );
    assert_eq!(entries(cwd.path()), Vec::<String>::new());
}
