//! Running the `insync` binary this test was built with, as a user runs it from a shell.

use std::process::Command;

/// Runs `insync ARGS` to completion: its exit code, stdout and stderr.
pub fn insync(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(args)
        .output()
        .expect("run insync");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).expect("utf-8"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}
