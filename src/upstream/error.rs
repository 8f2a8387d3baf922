//! How a request to a node fails, and the text of an error with its causes.

use super::health::Reach;
use crate::config::duration::Human;
use std::time::Duration;

/// How a request to a node failed before a response came.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The TCP connection could not be made: the node certainly did not see the request.
    #[error("connect failed: {0}")]
    Connect(String),
    /// No complete answer within the attempt timeout: the node may have applied the request.
    #[error("no answer within {}", Human(*.0))]
    Timeout(Duration),
    /// The connection broke after the request was (maybe) sent: the node may have applied it.
    #[error("connection failed mid-request: {0}")]
    Broken(String),
    /// The node's response body was larger than the limit.
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    /// dtc did not send the request (the key's lease would not outlive it): the node never saw it.
    #[error("{0}")]
    NotSent(String),
}

impl SendError {
    /// What the failure says about reaching the node: a connection that could not be made
    /// means it cannot be reached; one that broke after the request went out (a reset), an
    /// oversized answer or a request never sent say nothing either way. (An attempt timeout is
    /// reported by the caller that set it, [`super::Node::timed_out`].)
    pub fn reach(&self) -> Reach {
        match self {
            SendError::Connect(e) => Reach::Unreachable(format!("connect failed: {e}")),
            SendError::Timeout(d) => Reach::Unreachable(format!("no answer within {}", Human(*d))),
            SendError::Broken(_) | SendError::TooLarge(_) | SendError::NotSent(_) => Reach::Unclear,
        }
    }

    /// Whether the node may have applied the request anyway.
    pub fn maybe_applied(&self) -> bool {
        !matches!(self, SendError::Connect(_) | SendError::NotSent(_))
    }

    /// Whether the request may still be under way at the node, to be applied later: no answer
    /// came (a timeout, a connection cut after it went out); implies [`Self::maybe_applied`].
    /// An oversized answer is an answer: the node finished the request.
    pub fn under_way(&self) -> bool {
        matches!(self, SendError::Timeout(_) | SendError::Broken(_))
    }
}

/// The innermost useful message of an error chain.
pub fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text = format!("{text}: {s}");
        cur = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_reads_as_people_write_durations() {
        let e = SendError::Timeout(Duration::from_nanos(859_353_982));
        assert_eq!(e.to_string(), "no answer within 859ms");
        assert_eq!(
            e.reach(),
            Reach::Unreachable("no answer within 859ms".into())
        );
    }
}
