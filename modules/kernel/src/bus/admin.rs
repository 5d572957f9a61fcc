//! Operator API for the bus (role `admin`): list events by their worst delivery state and
//! replay failed (or all) deliveries of one event.

use actix_web::{HttpResponse, get, post, web};
use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Integer, Nullable, Text, Timestamp},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    Bus, DeliveryStatus,
    relay::placeholders,
    schema::{bus_deliveries, bus_events, bus_inbox},
};
use crate::{
    auth::{AdminOnly, Authorized},
    db::{KeysetPage, page_total, write_tx},
    error::{ApiError, ErrorKind, FieldError},
    http::{
        Query, cursor,
        docs::{AuthProblems, NotFoundProblem, ValidationProblem},
        page_params,
    },
};

/// Mounts the operator endpoints (under `/api/v1` by the binary).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events)
        .service(replay_event)
        .service(super::subscribers::list_subscribers);
}

/// An event and how far its deliveries got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventSummary {
    /// Event id.
    pub id: Uuid,
    /// Event type, e.g. `product.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Producing module.
    pub source: String,
    /// The aggregate it is about.
    pub subject: String,
    /// When it was published (UTC).
    pub time: DateTime<Utc>,
    /// The worst state over its subscribers: `failed`, else `pending`, else `delivered`;
    /// `unconsumed` when no subscriber took it (nothing was delivered, nothing waits).
    pub status: EventStatus,
    /// The most attempts any subscriber needed so far (0 when unconsumed).
    pub attempts: i32,
    /// The last error of a failing delivery, if any.
    pub last_error: Option<String>,
}

/// Where an event stands: the worst state of its deliveries, or `unconsumed` when it has
/// none because no subscriber takes its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// A delivery waits for (another) attempt.
    Pending,
    /// Every subscriber handled it.
    Delivered,
    /// A delivery gave up after the configured attempts; it waits for an operator's replay.
    Failed,
    /// No subscriber takes its type: it was recorded, and nobody was waiting for it.
    Unconsumed,
}

impl EventStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Unconsumed => "unconsumed",
            Self::Pending => DeliveryStatus::Pending.as_str(),
            Self::Delivered => DeliveryStatus::Delivered.as_str(),
            Self::Failed => DeliveryStatus::Failed.as_str(),
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        if s == "unconsumed" {
            return Ok(Self::Unconsumed);
        }
        Ok(match DeliveryStatus::parse(s)? {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Failed => Self::Failed,
        })
    }
}

/// One page of events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events on this page.
    pub items: Vec<EventSummary>,
    /// Cursor for the next (older) page, or null.
    pub next: Option<String>,
    /// How many events match the filter, over all pages.
    pub total: u64,
}

/// Query parameters of `GET /admin/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// Only events in this state (`failed` lists the dead letters).
    pub status: Option<EventStatus>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// Query parameters of `POST /admin/events/{id}/replay`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// Re-deliver to every subscriber, not only the failed ones; their handlers run again.
    pub all: Option<bool>,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    /// The event replayed.
    pub id: Uuid,
    /// How many deliveries were scheduled again.
    pub replayed: usize,
}

// The worst state over an event's deliveries, in SQL both databases accept.
const WORST: &str = "CASE WHEN COUNT(d.seq) = 0 THEN 'unconsumed' \
     WHEN SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END) > 0 THEN 'failed' \
     WHEN SUM(CASE WHEN d.status = 'pending' THEN 1 ELSE 0 END) > 0 THEN 'pending' \
     ELSE 'delivered' END";

/// The events that pass the filters (their `?` placeholders in this order: type, cursor,
/// status), one row per event with `columns`.
fn matching(columns: &str, kind: bool, before: bool, status: bool) -> String {
    let mut sql = format!(
        "SELECT {columns} FROM bus_events e LEFT JOIN bus_deliveries d ON d.seq = e.seq \
         WHERE 1 = 1"
    );
    if kind {
        sql.push_str(" AND e.type = ?");
    }
    if before {
        sql.push_str(" AND e.seq < ?");
    }
    sql.push_str(" GROUP BY e.seq, e.id, e.type, e.source, e.subject, e.time");
    if status {
        sql.push_str(" HAVING ");
        sql.push_str(WORST);
        sql.push_str(" = ?");
    }
    sql
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

#[derive(Debug, QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Timestamp)]
    time: NaiveDateTime,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

/// List events.
///
/// Newest first, each with the worst state over its subscribers' deliveries (`unconsumed`:
/// no subscriber takes its type). Filter by `status` (`failed` lists the dead letters) and
/// `type`.
#[utoipa::path(
    tag = "admin",
    operation_id = "list_events",
    params(EventListParams),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "One page of events", body = EventPage),
        AuthProblems,
        ValidationProblem,
    )
)]
#[get("/admin/events")]
async fn list_events(
    _admin: Authorized<AdminOnly>,
    bus: web::Data<Bus>,
    params: Query<EventListParams>,
) -> Result<HttpResponse, ApiError> {
    let (params, limit, before) = params.parse(|params| {
        let page = page_params::<i64>(params.limit, params.cursor.as_deref());
        let mut errors = page.as_ref().err().cloned().unwrap_or_default();
        if params.kind.as_ref().is_some_and(|k| k.len() > 200) {
            errors.push(FieldError::new("type", "must be at most 200 characters"));
        }
        match page {
            Ok((limit, before)) if errors.is_empty() => Ok((params, limit, before)),
            _ => Err(errors),
        }
    })?;
    let page = bus
        .db()
        .run(move |conn| {
            let (kind, status) = (params.kind.is_some(), params.status.is_some());
            let count = format!(
                "SELECT COUNT(*) AS total FROM ({}) events_matching",
                matching("e.seq", kind, false, status)
            );
            let mut count = diesel::sql_query(placeholders(conn, &count)).into_boxed();
            let columns = format!(
                "e.seq AS seq, e.id AS id, e.type AS kind, e.source AS source, \
                 e.subject AS subject, e.time AS time, {WORST} AS status, \
                 CAST(COALESCE(MAX(d.attempts), 0) AS INTEGER) AS attempts, \
                 MAX(d.last_error) AS last_error"
            );
            let sql =
                matching(&columns, kind, before.is_some(), status) + " ORDER BY e.seq DESC LIMIT ?";
            let mut query = diesel::sql_query(placeholders(conn, &sql)).into_boxed();
            if let Some(kind) = params.kind {
                count = count.bind::<Text, _>(kind.clone());
                query = query.bind::<Text, _>(kind);
            }
            if let Some(before) = before {
                query = query.bind::<BigInt, _>(before);
            }
            if let Some(status) = params.status {
                count = count.bind::<Text, _>(status.as_str());
                query = query.bind::<Text, _>(status.as_str());
            }
            let total = count.get_result::<Count>(conn).context("count events")?;
            let rows: Vec<SummaryRow> = query
                .bind::<BigInt, _>(KeysetPage::<SummaryRow>::fetch(limit))
                .load(conn)
                .context("list events")?;
            let (rows, next) = KeysetPage::of(rows, limit).finish(|r| cursor::encode(&r.seq));
            let items = rows
                .into_iter()
                .map(|r| {
                    Ok(EventSummary {
                        id: r.id.parse().context("corrupt event id")?,
                        kind: r.kind,
                        source: r.source,
                        subject: r.subject,
                        time: r.time.and_utc(),
                        status: EventStatus::parse(&r.status)?,
                        attempts: r.attempts,
                        last_error: r.last_error,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok::<_, ApiError>(EventPage {
                items,
                next,
                total: page_total(total.total),
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Replay an event.
///
/// Schedules the event's failed deliveries again (with `all=true`: every delivery, and the
/// handlers run again even where they had succeeded).
#[utoipa::path(
    tag = "admin",
    operation_id = "replay_event",
    params(("id" = Uuid, Path, description = "Event id"), ReplayParams),
    security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "Deliveries scheduled", body = ReplayResult),
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[post("/admin/events/{id}/replay")]
async fn replay_event(
    _admin: Authorized<AdminOnly>,
    bus: web::Data<Bus>,
    id: web::Path<Uuid>,
    params: Query<ReplayParams>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let all = params.into_inner()?.all.unwrap_or(false);
    let replayed = bus.db().run(move |conn| replay(conn, id, all)).await?;
    bus.wake_relay();
    Ok(HttpResponse::Accepted().json(ReplayResult { id, replayed }))
}

fn replay(conn: &mut crate::db::DbConnection, id: Uuid, all: bool) -> Result<usize, ApiError> {
    write_tx(conn, |conn| {
        let seq: i64 = bus_events::table
            .filter(bus_events::id.eq(id.to_string()))
            .select(bus_events::seq)
            .first(conn)
            .optional()
            .context("find event")?
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("No event {id}.")))?;
        let reset = (
            bus_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            bus_deliveries::attempts.eq(0),
            bus_deliveries::next_attempt_at.eq(crate::time::now()),
            bus_deliveries::lease_owner.eq(None::<String>),
            bus_deliveries::lease_until.eq(None::<NaiveDateTime>),
            bus_deliveries::last_error.eq(None::<String>),
        );
        let replayed = if all {
            // Forget that the handlers ran, so they run again.
            diesel::delete(bus_inbox::table.filter(bus_inbox::event_id.eq(id.to_string())))
                .execute(conn)
                .context("clear inbox")?;
            diesel::update(bus_deliveries::table.filter(bus_deliveries::seq.eq(seq)))
                .set(reset)
                .execute(conn)
        } else {
            diesel::update(
                bus_deliveries::table
                    .filter(bus_deliveries::seq.eq(seq))
                    .filter(bus_deliveries::status.eq(DeliveryStatus::Failed.as_str())),
            )
            .set(reset)
            .execute(conn)
        }
        .context("reschedule deliveries")?;
        Ok(replayed)
    })
}
