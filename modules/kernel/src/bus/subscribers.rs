//! The bus per subscriber (role `admin`): how many deliveries wait, how many gave up (dead
//! letters) and how long the oldest waiting event has waited. Read by the operator console
//! and by the Prometheus gauges ([`crate::metrics`]), from the outbox tables, so the figures
//! are true for every process sharing the database.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{
    QueryableByName, RunQueryDsl,
    sql_types::{BigInt, Nullable, Text, Timestamp},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Bus;
use crate::{
    auth::{AdminOnly, Authorized},
    error::ApiError,
    http::docs::AuthProblems,
};

/// One subscriber's backlog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriberBacklog {
    /// The subscriber's name on the bus (`<module>.<purpose>`, as in the module map).
    pub subscriber: String,
    /// Deliveries waiting for a first or a further attempt.
    pub pending: u64,
    /// Dead letters: deliveries that gave up after the configured attempts and wait for an
    /// operator's replay.
    pub failed: u64,
    /// When the oldest event still waiting for this subscriber was published (UTC); null
    /// when nothing waits.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// How long that event has waited, in seconds (0 when nothing waits): how far behind
    /// the relay is for this subscriber.
    pub lag_seconds: f64,
}

/// Every subscriber's backlog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriberList {
    /// One entry per subscriber, by name: those registered in this process, and any other
    /// that has deliveries waiting or dead-lettered in the shared outbox.
    pub items: Vec<SubscriberBacklog>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    oldest_pending: Option<NaiveDateTime>,
}

/// The backlog of every subscriber registered on `bus` (zeros when nothing waits) and of any
/// other subscriber with deliveries waiting or failed, sorted by name.
///
/// # Errors
/// The outbox could not be read.
pub async fn backlog(bus: &Bus) -> anyhow::Result<Vec<SubscriberBacklog>> {
    let rows: Vec<Row> = bus
        .db()
        .run(|conn| {
            diesel::sql_query(
                "SELECT d.subscriber AS subscriber, \
                 CAST(SUM(CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END) AS BIGINT) AS pending, \
                 CAST(SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
                 MIN(CASE WHEN d.status = 'pending' THEN e.time END) AS oldest_pending \
                 FROM bus_deliveries d JOIN bus_events e ON e.seq = d.seq \
                 WHERE d.status IN ('pending', 'failed') \
                 GROUP BY d.subscriber",
            )
            .load(conn)
            .context("read the outbox backlog per subscriber")
        })
        .await?;
    let now = crate::time::now();
    let mut items: Vec<SubscriberBacklog> = rows
        .into_iter()
        .map(|row| SubscriberBacklog {
            subscriber: row.subscriber,
            pending: u64::try_from(row.pending).unwrap_or_default(),
            failed: u64::try_from(row.failed).unwrap_or_default(),
            oldest_pending: row.oldest_pending.map(|t| t.and_utc()),
            lag_seconds: row
                .oldest_pending
                .map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0)),
        })
        .collect();
    for name in bus.subscriber_names() {
        if !items.iter().any(|item| item.subscriber == name) {
            items.push(SubscriberBacklog {
                subscriber: name,
                pending: 0,
                failed: 0,
                oldest_pending: None,
                lag_seconds: 0.0,
            });
        }
    }
    items.sort_by(|a, b| a.subscriber.cmp(&b.subscriber));
    Ok(items)
}

/// List subscribers.
///
/// Each bus subscriber with its deliveries waiting (`pending`), its dead letters (`failed`,
/// listed by `GET /api/v1/admin/events?status=failed`) and its lag: how long the oldest
/// waiting event has waited.
#[utoipa::path(
    tag = "admin",
    operation_id = "list_subscribers",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Every subscriber's backlog", body = SubscriberList),
        AuthProblems,
    )
)]
#[get("/admin/subscribers")]
pub(crate) async fn list_subscribers(
    _admin: Authorized<AdminOnly>,
    bus: web::Data<Bus>,
) -> Result<HttpResponse, ApiError> {
    let items = backlog(&bus).await?;
    Ok(HttpResponse::Ok().json(SubscriberList { items }))
}
