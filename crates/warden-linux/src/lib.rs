//! warden-linux.
