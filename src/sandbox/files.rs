//! Pod sandbox: files.
