//! `insync check` and `insync explore` (owned by the model work; filled in there).
use clap::Args;

#[derive(Args)]
pub struct CheckArgs {}

#[derive(Args)]
pub struct ExploreArgs {}

pub fn run_check(_args: CheckArgs) -> i32 {
    eprintln!("insync check: not built yet");
    2
}

pub fn run_explore(_args: ExploreArgs) -> i32 {
    eprintln!("insync explore: not built yet");
    2
}
