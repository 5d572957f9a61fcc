//! Liveness and readiness probes (`/health/live`, `/health/ready`).

use actix_web::{HttpResponse, get, web};
use kernel::{
    bus::Bus,
    db::Db,
    error::{ApiError, ErrorKind, Problem},
};
use serde::Serialize;
use utoipa::ToSchema;

/// Shared state of the running app.
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: Db,
    pub bus: Bus,
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` when the check passed.
    status: &'static str,
    /// In a split deployment, the broker: `degraded` while events wait in the outbox for it
    /// (the service still takes writes, so it stays ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<kernel::bus::BrokerHealth>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(tag = "health", operation_id = "health_live", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
#[get("/health/live")]
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        broker: None,
    })
}

/// Readiness: the database answers and the event relay is running.
#[utoipa::path(tag = "health", operation_id = "health_ready", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer, or the event relay is not running", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/health/ready")]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = ?e, "readiness check failed");
        ApiError::new(
            ErrorKind::ServiceUnavailable,
            "The database does not answer.",
        )
    })?;
    if !state.bus.relay_alive() {
        return Err(ApiError::new(
            ErrorKind::ServiceUnavailable,
            "The event relay is not running.",
        ));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        broker: state.bus.broker_health(),
    }))
}
