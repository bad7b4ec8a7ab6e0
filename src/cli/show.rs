//! `insync show FILE` and `insync explore --trace FILE`: a saved trace (from `insync traces`,
//! a CI artifact) opened with nothing but the file. Its `#meta` names the configuration, and
//! reading it re-runs the model along the trace (`insync_conformance::trace`), so a trace the
//! model cannot take is refused before anything is printed or served.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use clap::Args;
use insync_conformance::trace::{ModelTrace, TraceFile};
use insync_model::{describe, properties, InsyncModel};

use super::usage;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    insync show tests/traces/counterexample-kip-279-strong_isr.json\n  \
    insync show cex.json --diagram mermaid\n  \
    insync explore --trace cex.json")]
pub struct ShowArgs {
    /// A trace file (ITF JSON, as `insync traces` writes it).
    file: PathBuf,
    /// Print a diagram instead of steps: mermaid.
    #[arg(long)]
    diagram: Option<String>,
}

/// The trace in `file` and the model its `#meta` configures.
fn load(file: &Path) -> Result<(InsyncModel, ModelTrace), String> {
    let parsed = TraceFile::read(file).map_err(|e| e.to_string())?;
    let model = InsyncModel::new(parsed.meta.config);
    let trace = parsed.to_path(&model).map_err(|e| e.to_string())?;
    Ok((model, trace))
}

/// What the trace is, in one line.
fn title(trace: &ModelTrace) -> String {
    let meta = &trace.meta;
    match &meta.property {
        Some(p) => format!("{} of {p}: {}", meta.source.name(), meta.description),
        None => format!("{}: {}", meta.source.name(), meta.description),
    }
}

pub fn run_show(args: ShowArgs) -> i32 {
    if let Some(d) = args.diagram.as_deref().filter(|d| *d != "mermaid") {
        return usage(format!("unknown --diagram '{d}': expected mermaid"));
    }
    let (model, trace) = match load(&args.file) {
        Ok(loaded) => loaded,
        Err(e) => return usage(e),
    };
    if args.diagram.is_some() {
        let name = trace.meta.property.clone().unwrap_or_else(|| title(&trace));
        print!("{}", describe::mermaid(&model, &name, &trace.path));
        return 0;
    }
    println!("{}", title(&trace));
    println!("configuration: {}", model.cfg);
    for line in describe::describe_state(&model, &trace.path[0].0) {
        println!("   0. {line}");
    }
    for step in describe::describe_path(&model, &trace.path) {
        println!("  {:>2}. {}", step.number, step.text);
        for effect in &step.effects {
            println!("        {effect}");
        }
    }
    if let Some(p) = trace.meta.property.as_deref() {
        let verdict = match properties::is_invariant(p) {
            true => "violated",
            false => "reached",
        };
        println!("after step {}: {p} {verdict}", trace.steps());
    }
    println!("browse it: insync explore --trace {}", args.file.display());
    0
}

/// `addr` with port 0 replaced by a free port, so that the printed URL can name it.
fn resolve(addr: &str) -> Result<String, String> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad --addr '{addr}': {e}"))?;
    if parsed.port() != 0 {
        return Ok(addr.to_owned());
    }
    let listener = TcpListener::bind(parsed).map_err(|e| format!("--addr {addr}: {e}"))?;
    let free = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(free.to_string())
}

/// Serves the Explorer on the trace's configuration and prints the URL of its path.
pub fn explore_trace(file: &Path, addr: &str) -> i32 {
    let (model, trace) = match load(file) {
        Ok(loaded) => loaded,
        Err(e) => return usage(e),
    };
    let addr = match resolve(addr) {
        Ok(addr) => addr,
        Err(e) => return usage(e),
    };
    println!("{}", title(&trace));
    println!("configuration: {}", model.cfg);
    println!("{}", describe::explorer_url(&model, &addr, &trace.path));
    use stateright::Model;
    model.checker().serve(addr.as_str());
    0
}
