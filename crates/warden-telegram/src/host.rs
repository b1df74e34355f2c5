//! The channel's narrow view of the control plane: create, queue, wait for and cancel agent
//! turns, and reset a tenant's session. `warden serve` implements it on its queue and store; the
//! channel's tests implement it with a few lines, so the channel is testable without a server.

use std::future::Future;

use warden_store::{NewTurn, Turn, TurnId};

/// What the channel needs from the control plane.
pub trait TurnHost: Send + Sync + 'static {
    /// The tenant of chats configured without one (the platform's).
    fn platform_tenant(&self) -> String;

    /// A validated agent turn of `tenant` for `prompt`, ready to be stored (not queued yet), or
    /// a short reason the chat may read.
    fn agent_turn(&self, tenant: &str, prompt: &str) -> Result<NewTurn, String>;

    /// Queues a stored turn; does nothing if it is already queued, running or finished.
    fn enqueue(&self, tenant: &str, id: &TurnId);

    /// Waits until the turn is final and returns it; a non-final turn (or `None`) means the
    /// control plane is shutting down before it ran.
    fn wait(&self, id: &TurnId) -> impl Future<Output = Option<Turn>> + Send;

    /// Cancels a queued or running turn; false if there was nothing to cancel.
    fn cancel(&self, id: &TurnId) -> bool;

    /// Starts a fresh agent session for `tenant` (the next turn does not see the old one).
    fn reset_session(&self, tenant: &str) -> Result<(), String>;
}
