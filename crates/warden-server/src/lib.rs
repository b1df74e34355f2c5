//! warden-server.
