//! The OCI runtime driver: any runc-compatible binary driven through its command line, chosen per pod by its RuntimeClass handler.
