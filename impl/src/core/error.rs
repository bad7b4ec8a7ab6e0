//! Errors of the core: inputs that make no sense from their sender, timers fired when not
//! armed, and log failures. Fencing outcomes are protocol responses, never errors.

use crate::protocol::{NodeId, Timer};

/// Why the core refused an input. The runtime logs `UnexpectedMessage` and `InvalidRequest`
/// and closes that connection; `TimerNotArmed` is an error reply on the control channel;
/// `Storage` means the log failed and the process must exit (a crash is the fault the
/// protocol knows how to survive).
#[derive(Debug, thiserror::Error)]
pub enum CoreError<E = std::convert::Infallible> {
    #[error("replica log failed: {0}")]
    Storage(#[source] E),
    #[error("{message} is not expected from {from:?}")]
    UnexpectedMessage { from: NodeId, message: &'static str },
    #[error("invalid {message} from {from:?}: {reason}")]
    InvalidRequest {
        from: NodeId,
        message: &'static str,
        reason: &'static str,
    },
    #[error("timer {0:?} is not armed")]
    TimerNotArmed(Timer),
}

/// The controller has no log, so its errors never carry a storage failure.
pub type ControllerError = CoreError<std::convert::Infallible>;
