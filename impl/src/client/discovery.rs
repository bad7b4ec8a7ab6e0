//! [`Discovery`]: where is the leader? Asks the controller when it knows its address (its view
//! is the authoritative one), otherwise the bootstrap nodes and the brokers it has learned of.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ClientConfig, ClientError, ControlClient};
use crate::protocol::{BrokerId, Metadata, NodeId};

/// A metadata request to one node may take this long before the next node is asked.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// What a client knows of the cluster's addresses.
#[derive(Debug, Clone)]
pub struct Discovery {
    bootstrap: Vec<String>,
    cluster_id: String,
    controller: Option<String>,
    brokers: BTreeMap<BrokerId, String>,
}

impl Discovery {
    pub fn new(config: &ClientConfig) -> Self {
        Discovery {
            bootstrap: config.bootstrap.clone(),
            cluster_id: config.cluster_id.clone(),
            controller: None,
            brokers: BTreeMap::new(),
        }
    }

    /// One pass over the known nodes; the caller retries with back-off on error.
    pub async fn leader(&mut self) -> Result<(BrokerId, String), ClientError> {
        let mut reported: Option<BrokerId> = None;
        let mut last_error = String::from("no node answered");
        let mut asked: Vec<String> = Vec::new();
        while let Some(address) = self.next_candidate(&asked) {
            asked.push(address.clone());
            let metadata = match ask(&address, &self.cluster_id).await {
                Ok(metadata) => metadata,
                Err(error) => {
                    last_error = error.to_string();
                    continue;
                }
            };
            self.learn(&metadata);
            let leader = metadata.view.as_ref().and_then(|view| view.leader);
            if metadata.node == NodeId::Controller {
                match leader {
                    Some(leader) => return self.located(leader),
                    None => last_error = "the controller reports no leader".into(),
                }
            } else if leader.is_some() && reported.is_none() {
                reported = leader;
            }
        }
        match reported {
            Some(leader) => self.located(leader),
            None => Err(ClientError::NoLeader { reason: last_error }),
        }
    }

    /// The controller first, then bootstrap nodes, then learned brokers; each once a pass.
    fn next_candidate(&self, asked: &[String]) -> Option<String> {
        let controller = self.controller.iter();
        let mut everyone = controller
            .chain(self.bootstrap.iter())
            .chain(self.brokers.values());
        everyone.find(|address| !asked.contains(address)).cloned()
    }

    fn learn(&mut self, metadata: &Metadata) {
        if let Some(controller) = &metadata.controller {
            self.controller = Some(controller.clone());
        }
        for (id, address) in &metadata.brokers {
            self.brokers.insert(*id, address.clone());
        }
    }

    fn located(&self, leader: BrokerId) -> Result<(BrokerId, String), ClientError> {
        match self.brokers.get(&leader) {
            Some(address) => Ok((leader, address.clone())),
            None => Err(ClientError::NoLeader {
                reason: format!("leader {leader} has no known address"),
            }),
        }
    }
}

async fn ask(address: &str, cluster_id: &str) -> Result<Metadata, ClientError> {
    let exchange = async {
        let mut control = ControlClient::connect(address, cluster_id).await?;
        control.metadata().await
    };
    tokio::time::timeout(METADATA_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::Timeout {
            what: format!("asking {address} for metadata"),
        })?
}
