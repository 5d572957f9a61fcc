//! HTTP handlers of the payment module, mounted under `/api/v1`. Customers pay for and read
//! their own payments; admins see every payment and refund. Each handler parses its input
//! into domain values, calls the [`PaymentService`] and shapes the response; no rule lives
//! here.

use actix_web::{HttpResponse, get, post, web};
use kernel::{
    auth::{AdminOnly, AllowedRoles, Authorized, Role},
    error::ApiError,
    http::{
        Json, Query,
        docs::{
            AuthProblems, BodyProblems, ConflictProblem, NotFoundProblem, UnavailableProblem,
            ValidationProblem,
        },
        with_location,
    },
};
use payment_api::{
    Card, CreatePayment, CreateRefund, Payment, PaymentId, PaymentListParams, PaymentPage,
    PaymentQuery, PaymentService,
};
use utoipa_actix_web::service_config::ServiceConfig;

pub(crate) const TAG: &str = "payment";

/// Mounts the payment handlers; the binary puts them under `/api/v1`.
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_payment)
        .service(list_payments)
        .service(get_payment)
        .service(create_refund);
}

type Payments = web::Data<dyn PaymentService>;

/// `customer` or `admin`: the people who pay and the people who look after payments.
#[derive(Debug)]
pub(crate) struct CustomerOrAdmin;

impl AllowedRoles for CustomerOrAdmin {
    const ROLES: &'static [Role] = &[Role::Customer, Role::Admin];
}

fn created(payment: &Payment) -> HttpResponse {
    with_location(
        HttpResponse::Created().json(payment),
        format!("/api/v1/payments/{}", payment.id),
    )
}

/// Pay for an order.
///
/// Charges the order's total (taken from the order, never from the request) to the card.
/// The order must be `pending_payment` and have no payment in progress or succeeded. A
/// declined card is not an error: the payment is created with status `failed` and a
/// `failure_code`, and the order can be paid again. Only the card's brand and last four
/// digits are kept. Test cards: `4242424242424242` succeeds, `4000000000000002` is declined,
/// `4000000000009995` has insufficient funds.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_payment",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retry safe: the same key with the same body replays the first response instead of charging again"),
    ),
    request_body = CreatePayment,
    security(("bearer" = ["customer", "admin"])),
    responses(
        (status = 201, description = "Created; `status` says whether the charge succeeded or failed",
            body = Payment, headers(("Location" = String, description = "The new payment"))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        ValidationProblem,
        UnavailableProblem,
    )
)]
#[post("/payments")]
async fn create_payment(
    caller: Authorized<CustomerOrAdmin>,
    payments: Payments,
    body: Json<CreatePayment>,
) -> Result<HttpResponse, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let (order_id, card) =
        body.parse(|body| Card::parse(&body.card, today).map(|card| (body.order_id, card)))?;
    let payment = payments.pay(caller.principal(), order_id, card).await?;
    Ok(created(&payment))
}

/// List payments.
///
/// Newest first; customers see only their own. Filter by order with `order_id`. Pages are
/// cursor-based: pass `next` as `cursor`.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_payments",
    params(PaymentListParams),
    security(("bearer" = ["customer", "admin"])),
    responses(
        (status = 200, description = "One page of payments", body = PaymentPage),
        AuthProblems,
        ValidationProblem,
    )
)]
#[get("/payments")]
async fn list_payments(
    caller: Authorized<CustomerOrAdmin>,
    payments: Payments,
    params: Query<PaymentListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(PaymentQuery::try_from)?;
    Ok(HttpResponse::Ok().json(payments.list(caller.principal(), query).await?))
}

/// Get a payment.
///
/// Customers get only their own payments (another's is reported as not found).
#[utoipa::path(
    tag = TAG,
    operation_id = "get_payment",
    params(("id" = PaymentId, Path, description = "Payment id")),
    security(("bearer" = ["customer", "admin"])),
    responses(
        (status = 200, description = "The payment", body = Payment),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/payments/{id}")]
async fn get_payment(
    caller: Authorized<CustomerOrAdmin>,
    payments: Payments,
    id: web::Path<PaymentId>,
) -> Result<HttpResponse, ApiError> {
    let payment = payments.get(caller.principal(), id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(payment))
}

/// Refund a payment.
///
/// Gives back `amount` (minor units) of a succeeded payment, at most what is left to refund;
/// the payment becomes `partially_refunded`, or `refunded` once everything is given back.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_refund",
    params(
        ("id" = PaymentId, Path, description = "Payment id"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retry safe: the same key with the same body replays the first response instead of refunding again"),
    ),
    request_body = CreateRefund,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The payment after the refund", body = Payment),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        ValidationProblem,
        UnavailableProblem,
    )
)]
#[post("/payments/{id}/refunds")]
async fn create_refund(
    _admin: Authorized<AdminOnly>,
    payments: Payments,
    id: web::Path<PaymentId>,
    body: Json<CreateRefund>,
) -> Result<HttpResponse, ApiError> {
    let payment = payments
        .refund(id.into_inner(), body.into_inner()?.amount)
        .await?;
    Ok(HttpResponse::Ok().json(payment))
}
