//! `insync validate DIR`: checks a real run's trace logs (`--trace-log DIR` on the nodes)
//! against the model (docs/validation.md).

use std::path::PathBuf;

use clap::Args;
use insync_conformance::validate::{describe, read, validate_dir, ValidateOptions, Verdict};
use insync_model::config::Variant;

#[derive(Args)]
#[command(after_help = "Example:\n  \
    insync cluster up --brokers 3 --trace-log run/trace    # then produce, kill, restart...\n  \
    insync validate run/trace\n  \
    insync validate run/trace --variant kip-320            # another variant's model: rejected\n\n\
    Exit codes: 0 accepted, 1 rejected or incomplete, 2 the logs cannot be read.")]
pub struct ValidateArgs {
    /// The trace directory the nodes wrote (one *.tlog file per node).
    pub dir: PathBuf,
    /// Check against this variant's model instead of the one the nodes ran.
    #[arg(long, value_parser = parse_variant)]
    pub variant: Option<Variant>,
    /// The verdict as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print every node's events, readably, instead of validating.
    #[arg(long)]
    pub print_logs: bool,
}

fn parse_variant(text: &str) -> Result<Variant, String> {
    text.parse()
}

pub fn run_validate(args: ValidateArgs) -> i32 {
    if args.print_logs {
        return print_logs(&args.dir);
    }
    let options = ValidateOptions {
        variant: args.variant,
    };
    let verdict = match validate_dir(&args.dir, &options) {
        Ok(verdict) => verdict,
        Err(error) => return super::usage(error.to_string()),
    };
    if args.json {
        let json = serde_json::to_string(&verdict).expect("verdicts serialise");
        println!("{json}");
    } else {
        println!("{verdict}");
        if let Verdict::Accepted(accepted) = &verdict {
            for note in &accepted.notes {
                println!("  note: {note}");
            }
        }
    }
    match verdict.is_accepted() {
        true => 0,
        false => 1,
    }
}

fn print_logs(dir: &std::path::Path) -> i32 {
    let logs = match read::read_dir(dir) {
        Ok(logs) => logs,
        Err(error) => return super::usage(error.to_string()),
    };
    for log in logs {
        println!("== {} ({} events)", log.name, log.events.len());
        for event in &log.events {
            println!("{:>6} {}", event.index, describe(event));
        }
        if let Some((bytes, why)) = &log.torn {
            println!("  torn tail: {bytes} bytes ({why})");
        }
    }
    0
}
