//! warden-doctor.
