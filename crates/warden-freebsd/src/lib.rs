//! warden-freebsd.
