//! How storage is opened: [`FsyncPolicy`] and [`StorageOptions`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// When appends reach stable storage. Mirrors the model's `fsync` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every append is fsynced before anything of the step that appended it is sent (the
    /// broker core follows each `Write::Append` with a `Write::Flush`): a crash loses nothing
    /// appended.
    Always,
    /// Appends are fsynced only when the `Flush` timer fires: a crash loses the unflushed tail,
    /// and durability comes from replication, as in Kafka's default configuration.
    Lazy,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Lazy => "lazy",
        })
    }
}

/// The `--fsync` value was neither `always` nor `lazy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fsync policy {0:?}: expected \"always\" or \"lazy\"")]
pub struct UnknownFsyncPolicy(pub String);

impl FromStr for FsyncPolicy {
    type Err = UnknownFsyncPolicy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "lazy" => Ok(FsyncPolicy::Lazy),
            other => Err(UnknownFsyncPolicy(other.to_owned())),
        }
    }
}

/// Options for opening a log or a whole data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageOptions {
    pub fsync: FsyncPolicy,
    /// Record the durable end offset at every log fsync, so that
    /// [`simulate_power_loss`](super::simulate_power_loss) can later cut the log back to it.
    /// For conformance runs; it costs a checkpoint write (three fsyncs) per log fsync.
    pub track_durability: bool,
}

impl StorageOptions {
    /// Production options: the given policy, no durability tracking.
    pub fn new(fsync: FsyncPolicy) -> Self {
        StorageOptions {
            fsync,
            track_durability: false,
        }
    }

    /// The same options with durability tracking switched on.
    pub fn tracking_durability(self) -> Self {
        StorageOptions {
            track_durability: true,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::Lazy] {
            assert_eq!(policy.to_string().parse::<FsyncPolicy>(), Ok(policy));
        }
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
