//! Pod sandbox: pause.
