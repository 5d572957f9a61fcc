//! HTTP handlers of the order module, under `/api/v1`. Customers place, read and cancel
//! their own orders; admins see all and ship and deliver.

use actix_web::{HttpResponse, get, post, web};
use kernel::{
    auth::{AdminOnly, AllowedRoles, Authorized, Role},
    error::{ApiError, FieldError},
    http::{
        Json, Query,
        docs::{AuthProblems, BodyProblems, ConflictProblem, NotFoundProblem, ValidationProblem},
        page_params,
    },
};
use order_api::{
    CreateOrder, NewOrder, Order, OrderId, OrderListParams, OrderPage, OrderQuery, OrderService,
    Transition,
};
use utoipa_actix_web::service_config::ServiceConfig;

pub(crate) const TAG: &str = "order";

/// Mounts the order handlers.
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(ship_order)
        .service(deliver_order);
}

/// Customers (their own orders) and admins (all).
#[derive(Debug)]
pub struct Shoppers;

impl AllowedRoles for Shoppers {
    const ROLES: &'static [Role] = &[Role::Customer, Role::Admin];
}

/// Who may read orders: customers (their own), admins, and services (the payment service
/// reads the order it charges, over HTTP in a split deployment).
#[derive(Debug)]
pub struct OrderReaders;

impl AllowedRoles for OrderReaders {
    const ROLES: &'static [Role] = &[Role::Customer, Role::Admin, Role::Service];
}

type Orders = web::Data<dyn OrderService>;

/// Place an order.
///
/// Prices every line from the catalog, reserves all of them or none and returns the order
/// as `pending_payment`. Unpaid orders expire. Send an `Idempotency-Key` to retry safely.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_order",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first response is replayed for 24 h")),
    security(("bearer" = ["customer", "admin"])),
    responses(
        (status = 201, description = "Placed", body = Order, headers(("Location" = String))),
        BodyProblems,
        AuthProblems,
        ConflictProblem,
        ValidationProblem,
    )
)]
#[post("/orders")]
async fn create_order(
    caller: Authorized<Shoppers>,
    orders: Orders,
    body: Json<CreateOrder>,
) -> Result<HttpResponse, ApiError> {
    let order = body.parse(NewOrder::try_from)?;
    let order = orders.place(caller.principal(), order).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/orders/{}", order.id)))
        .json(order))
}

/// List orders.
///
/// Newest first. Customers see their own orders only; admins may filter by `customer`.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_orders",
    params(OrderListParams),
    security(("bearer" = ["customer", "admin", "service"])),
    responses(
        (status = 200, description = "One page of orders", body = OrderPage),
        AuthProblems,
        ValidationProblem,
    )
)]
#[get("/orders")]
async fn list_orders(
    caller: Authorized<OrderReaders>,
    orders: Orders,
    params: Query<OrderListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(|params| {
        let page = page_params::<OrderId>(params.limit, params.cursor.as_deref());
        let mut errors = page.as_ref().err().cloned().unwrap_or_default();
        if params.customer.as_ref().is_some_and(|c| c.len() > 200) {
            errors.push(FieldError::new(
                "customer",
                "must be at most 200 characters",
            ));
        }
        let Some((limit, before)) = page.ok().filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(OrderQuery {
            status: params.status,
            customer: params.customer,
            limit,
            before,
        })
    })?;
    Ok(HttpResponse::Ok().json(orders.list(caller.principal(), query).await?))
}

/// Get an order.
///
/// Another customer's order answers 404.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_order",
    params(("id" = OrderId, Path, description = "Order id")),
    security(("bearer" = ["customer", "admin", "service"])),
    responses((status = 200, description = "The order", body = Order), AuthProblems, NotFoundProblem)
)]
#[get("/orders/{id}")]
async fn get_order(
    caller: Authorized<OrderReaders>,
    orders: Orders,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(orders.get(caller.principal(), id.into_inner()).await?))
}

/// Cancel an order.
///
/// Its stock is released; a paid order is refunded in full. Owner or admin; a shipped,
/// delivered or cancelled order answers 409.
#[utoipa::path(
    tag = TAG,
    operation_id = "cancel_order",
    params(("id" = OrderId, Path, description = "Order id")),
    security(("bearer" = ["customer", "admin"])),
    responses((status = 200, description = "Cancelled", body = Order), AuthProblems, NotFoundProblem, ConflictProblem)
)]
#[post("/orders/{id}/cancel")]
async fn cancel_order(
    caller: Authorized<Shoppers>,
    orders: Orders,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, ApiError> {
    let order = orders
        .transition(caller.principal(), id.into_inner(), Transition::Cancel)
        .await?;
    Ok(HttpResponse::Ok().json(order))
}

/// Ship a paid order (admin).
#[utoipa::path(
    tag = TAG,
    operation_id = "ship_order",
    params(("id" = OrderId, Path, description = "Order id")),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Shipped", body = Order), AuthProblems, NotFoundProblem, ConflictProblem)
)]
#[post("/orders/{id}/ship")]
async fn ship_order(
    admin: Authorized<AdminOnly>,
    orders: Orders,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, ApiError> {
    let order = orders
        .transition(admin.principal(), id.into_inner(), Transition::Ship)
        .await?;
    Ok(HttpResponse::Ok().json(order))
}

/// Mark a shipped order delivered (admin).
#[utoipa::path(
    tag = TAG,
    operation_id = "deliver_order",
    params(("id" = OrderId, Path, description = "Order id")),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "Delivered", body = Order), AuthProblems, NotFoundProblem, ConflictProblem)
)]
#[post("/orders/{id}/deliver")]
async fn deliver_order(
    admin: Authorized<AdminOnly>,
    orders: Orders,
    id: web::Path<OrderId>,
) -> Result<HttpResponse, ApiError> {
    let order = orders
        .transition(admin.principal(), id.into_inner(), Transition::Deliver)
        .await?;
    Ok(HttpResponse::Ok().json(order))
}
