//! The one place where domain errors become gRPC statuses.
//!
//! SKELETON: the image-service helper adds `From<ImageError> for Status`.
