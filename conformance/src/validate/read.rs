//! Reading a run's trace logs: one per node, every record checked to follow the one before.

use std::path::Path;

use insync_impl::protocol::NodeId;
use insync_impl::trace_log::{self, Event, Input, TraceHeader};

use super::ValidateError;

/// One node's log as read.
#[derive(Debug)]
pub struct NodeLog {
    pub node: NodeId,
    pub name: String,
    pub events: Vec<Event>,
    /// Bytes dropped at the end (a torn tail), and why.
    pub torn: Option<(u64, String)>,
}

impl NodeLog {
    /// The header of the node's first incarnation.
    pub fn header(&self) -> Option<&TraceHeader> {
        self.events.iter().find_map(|event| match &event.input {
            Input::Start(header) => Some(header),
            _ => None,
        })
    }
}

/// Every `*.tlog` file of `dir`, sorted by node (controller first, then brokers by id).
pub fn read_dir(dir: &Path) -> Result<Vec<NodeLog>, ValidateError> {
    let io = |source| ValidateError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(trace_log::TRACE_FILE_EXTENSION) {
            continue;
        }
        logs.push(read_one(&path)?);
    }
    if logs.is_empty() {
        return Err(ValidateError::NoLogs(dir.to_owned()));
    }
    logs.sort_by_key(|log| log.node);
    Ok(logs)
}

fn read_one(path: &Path) -> Result<NodeLog, ValidateError> {
    let format = |reason: String| ValidateError::Format {
        path: path.to_owned(),
        reason,
    };
    let read = trace_log::read_log(path).map_err(|e| format(e.to_string()))?;
    let node = match read.events.first().map(|e| &e.input) {
        Some(Input::Start(header)) => header.node,
        Some(other) => {
            return Err(format(format!(
                "the log starts with {other:?}, not a start"
            )))
        }
        None => return Err(format("no intact record".into())),
    };
    for (position, event) in read.events.iter().enumerate() {
        // A record edited out by hand, or a reordering: the log is not what a node wrote.
        if event.index != position as u64 {
            return Err(format(format!(
                "record {position} carries index {}: records are missing or out of order",
                event.index
            )));
        }
    }
    let torn = read.torn_reason.map(|reason| (read.torn_bytes, reason));
    Ok(NodeLog {
        name: node_name(node),
        node,
        events: read.events,
        torn,
    })
}

/// How reports name a node.
pub fn node_name(node: NodeId) -> String {
    match node {
        NodeId::Controller => "controller".into(),
        NodeId::Broker(b) => format!("broker {b}"),
        NodeId::Client(c) => format!("client {c}"),
    }
}
