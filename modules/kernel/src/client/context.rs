//! The call context of outgoing calls: the request id of the work in progress, carried in a
//! task-local. (The trace travels in the current `tracing` span when spans are exported, else
//! here: see [`crate::telemetry`].)

use std::future::Future;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// The request id of the work in progress, propagated to outgoing calls as `x-request-id`.
/// Set it around a handler (or any task) with [`CallContext::scope`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The incoming `x-request-id`.
    pub request_id: Option<String>,
    /// The request's trace, when no OpenTelemetry layer carries it
    /// ([`crate::telemetry::continue_trace`]).
    pub trace: Option<crate::telemetry::Trace>,
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
}
