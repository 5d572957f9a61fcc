//! The call context of outgoing calls: the request id and the W3C `traceparent` of the work
//! in progress, carried in a task-local and turned into a child span id per call.

use std::future::Future;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// The request id and W3C trace context of the work in progress, propagated to outgoing
/// calls. Set it around a handler (or any task) with [`CallContext::scope`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The incoming `x-request-id`.
    pub request_id: Option<String>,
    /// The incoming `traceparent` (`00-<trace id>-<parent id>-<flags>`).
    pub traceparent: Option<String>,
}

impl CallContext {
    /// Runs `fut` with `self` as the context of its outgoing calls.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// The context of the current task, if one was set.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The `traceparent` of an outgoing call: the same trace with a new span id when the
    /// context carries a valid one, else a new sampled trace.
    pub fn child_traceparent(&self) -> String {
        let random = uuid::Uuid::new_v4().as_u128();
        let span_id = format!("{:016x}", (random as u64) | 1);
        let parent = self.traceparent.as_deref().and_then(parse_traceparent);
        match parent {
            Some((trace_id, flags)) => format!("00-{trace_id}-{span_id}-{flags}"),
            None => {
                let trace_id = uuid::Uuid::new_v4().simple().to_string();
                format!("00-{trace_id}-{span_id}-01")
            }
        }
    }
}

/// `(trace id, flags)` of a version-00 `traceparent`.
pub(super) fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
    (parts.next().is_none()
        && version == "00"
        && hex(trace_id, 32)
        && !all_zero(trace_id)
        && hex(parent_id, 16)
        && !all_zero(parent_id)
        && hex(flags, 2))
    .then_some((trace_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_continue_a_known_trace_or_start_one() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = CallContext {
            request_id: None,
            traceparent: Some(parent.into()),
        };
        let child = ctx.child_traceparent();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(child.ends_with("-01"));
        assert_ne!(child, parent);
        let fresh = CallContext::default().child_traceparent();
        assert!(parse_traceparent(&fresh).is_some(), "{fresh}");
        let garbage = CallContext {
            request_id: None,
            traceparent: Some("00-zz-00f067aa0ba902b7-01".into()),
        };
        assert!(parse_traceparent(&garbage.child_traceparent()).is_some());
    }
}
