//! Shutdown as a value (mini-redis `src/shutdown.rs`): every task holds a [`Shutdown`] and
//! selects on [`Shutdown::recv`]; whoever decides to stop calls [`ShutdownTrigger::trigger`].
//!
//! A `watch` channel rather than a broadcast: a task created after the trigger still sees it,
//! so there is no window in which a new connection handler misses the signal.

use tokio::sync::watch;

/// Fires the shutdown of every [`Shutdown`] cloned from it.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// One task's view of the shutdown signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// A trigger and its first listener.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    /// Asks every task to stop. Idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once shutdown is triggered (at once if it already was). Cancel-safe.
    pub async fn recv(&mut self) {
        // An error means every trigger is gone: nobody can stop us any more, so stop now.
        let _ = self.receiver.wait_for(|stopped| *stopped).await;
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// SIGINT/SIGTERM trigger a graceful shutdown of the node.
pub fn spawn_signal_handler(trigger: ShutdownTrigger) {
    tokio::spawn(async move {
        termination_signal().await;
        tracing::info!("termination signal received; shutting down");
        trigger.trigger();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn late_subscribers_see_an_earlier_trigger() {
        let (trigger, mut first) = shutdown_pair();
        assert!(!first.is_shutdown());
        trigger.trigger();
        first.recv().await;
        let mut late = trigger.subscribe();
        assert!(late.is_shutdown());
        late.recv().await;
    }
}
