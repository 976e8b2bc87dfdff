//! One way to print an error with its causes, used by every domain error's
//! `full_message()`: gRPC status messages, logs, error streams and CLI output carry the
//! whole chain ("pull ...: registry answered 401: ..."), with a cause left out when an
//! outer message already quotes it (thiserror messages often embed `{source}`).

/// `e` followed by each of its sources not already part of the text, joined by ": ".
pub fn full_message(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn joins_sources_and_skips_quoted_ones() {
        let io = || std::io::Error::other("inner");
        assert_eq!(full_message(&Outer(io())), "outer: inner");
        assert_eq!(full_message(&Quoting(io())), "outer: inner");
    }
}
