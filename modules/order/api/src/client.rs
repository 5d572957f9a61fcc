//! [`HttpOrderService`]: the [`OrderService`] trait over the order module's public REST API
//! (feature `client`), for deployments where order runs elsewhere.
//!
//! Who the order API sees as the caller:
//!
//! - **reads** (`get`, `list`) go out with the calling module's `service` token, and the
//!   ownership rule is enforced here, on the client side, exactly as the in-process service
//!   does: a customer `actor` gets [`OrderError::NotFound`] for another customer's order, and
//!   `list` is narrowed to the customer's own orders. (The order API must admit role
//!   `service` on `GET /orders` and `GET /orders/{id}`.)
//! - **writes** (`place`, `transition`) must act as the end user — the order's `customer` is
//!   the placing token's subject, and cancelling, shipping and delivering are checked
//!   against the actor's role — so they carry a one-minute token with the actor's subject
//!   and role, signed with the shared secret ([`Auth::OnBehalfOf`]). The order API then
//!   applies its own rules as if the user had called it.
//!
//! `place` sends a fresh `Idempotency-Key` per call, so its retries never place twice;
//! transitions are not retried. Errors: 404 → `NotFound`, 403 → `Forbidden`, 409 →
//! `InsufficientStock` / `IllegalTransition` (parsed from the detail the server renders from
//! the same enum), 422 → `UnknownProduct` (for `items[i].product_id`) or `Invalid`,
//! 502/503/504, timeouts, refused connections and an open breaker → `Unavailable`, anything
//! else → `Unexpected`.

use async_trait::async_trait;
use kernel::{
    auth::{JwtKeys, Principal, Role},
    client::{Auth, Method, Remote, RemoteConfig, RemoteError},
    error::Problem,
    http::cursor,
};
use product_api::ProductId;

use crate::{
    CreateOrder, NewOrder, Order, OrderError, OrderId, OrderPage, OrderQuery, OrderService,
    OrderStatus, Transition,
};

const ORDERS: &str = "/api/v1/orders";

/// [`OrderService`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpOrderService {
    remote: Remote,
}

impl HttpOrderService {
    /// A client of the order API at `config.base_url`, calling as module `caller` (the
    /// subject of its `service` tokens) with tokens signed by `keys` (the shared secret).
    ///
    /// # Errors
    /// A malformed base URL, or an HTTP client that cannot be built.
    pub fn new(caller: &str, keys: JwtKeys, config: &RemoteConfig) -> anyhow::Result<Self> {
        Ok(Self::from_remote(Remote::new(
            "order", caller, keys, config,
        )?))
    }

    pub fn from_remote(remote: Remote) -> Self {
        Self { remote }
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }
}

/// Customers see their own orders only; staff and services see all.
fn may_see(actor: &Principal, order: &Order) -> bool {
    actor.role != Role::Customer || order.customer == actor.sub
}

fn uuid_after(text: &str, prefix: &str) -> Option<uuid::Uuid> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find(&prefix.to_ascii_lowercase())? + prefix.len();
    text.get(start..start + 36)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
}

fn int_after(text: &str, prefix: &str) -> Option<i64> {
    let start = text.find(prefix)? + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// What the call was about, for the errors that name it.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Placing,
    Listing,
    Order(OrderId, Option<Transition>),
}

fn from_problem(problem: Problem, subject: Subject) -> OrderError {
    let detail = problem.detail.as_str();
    let lower = detail.to_ascii_lowercase();
    let unexpected = |p: &Problem| {
        OrderError::Unexpected(anyhow::anyhow!("order answered {}: {}", p.status, p.detail))
    };
    match (problem.status, subject) {
        (404, Subject::Order(id, _)) => OrderError::NotFound(id),
        (403, _) => OrderError::Forbidden(detail.trim_end_matches('.').to_owned()),
        (409, _) if lower.starts_with("insufficient stock") => (|| {
            Some(OrderError::InsufficientStock {
                product_id: ProductId(uuid_after(detail, "insufficient stock for product ")?),
                requested: int_after(detail, "requested ")?,
                available: int_after(detail, "available ")?,
            })
        })()
        .unwrap_or_else(|| unexpected(&problem)),
        (409, Subject::Order(id, Some(transition))) => {
            // "Order <id> is <status> and cannot be <verb>."
            let status = lower
                .split(" is ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|s| OrderStatus::parse(s).ok());
            match status {
                Some(status) => OrderError::IllegalTransition {
                    id,
                    status,
                    action: transition.verb(),
                },
                None => unexpected(&problem),
            }
        }
        (422, Subject::Placing) => {
            let unknown = problem.errors.iter().find_map(|e| {
                let index = e
                    .field
                    .strip_prefix("items[")?
                    .strip_suffix("].product_id")?
                    .parse()
                    .ok()?;
                let product_id = ProductId(uuid_after(&e.message, "product ")?);
                Some(OrderError::UnknownProduct { index, product_id })
            });
            unknown.unwrap_or(OrderError::Invalid(problem.errors))
        }
        (422, _) => OrderError::Invalid(problem.errors),
        (502..=504, _) => {
            OrderError::Unavailable(format!("order answered {}: {detail}", problem.status))
        }
        _ => unexpected(&problem),
    }
}

fn from_remote(error: RemoteError, subject: Subject) -> OrderError {
    match error {
        RemoteError::Unavailable { .. } => OrderError::Unavailable(error.to_string()),
        RemoteError::Problem { problem, .. } => from_problem(*problem, subject),
        RemoteError::Unexpected(e) => OrderError::Unexpected(e),
    }
}

#[async_trait]
impl OrderService for HttpOrderService {
    async fn place(&self, actor: &Principal, order: NewOrder) -> Result<Order, OrderError> {
        let r = &self.remote;
        let subject = Subject::Placing;
        let body = CreateOrder {
            items: order.items().to_vec(),
        };
        let request = r
            .request(Method::Post, ORDERS)
            .auth(Auth::OnBehalfOf(actor.clone()))
            .idempotency_key(uuid::Uuid::new_v4().to_string())
            .json(&body)
            .map_err(|e| from_remote(e, subject))?;
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        let r = &self.remote;
        let subject = Subject::Order(id, None);
        let response = r
            .send(r.request(Method::Get, format!("{ORDERS}/{id}")))
            .await
            .map_err(|e| from_remote(e, subject))?;
        let order: Order = response.json().map_err(|e| from_remote(e, subject))?;
        if may_see(actor, &order) {
            Ok(order)
        } else {
            Err(OrderError::NotFound(id))
        }
    }

    async fn list(&self, actor: &Principal, query: OrderQuery) -> Result<OrderPage, OrderError> {
        let r = &self.remote;
        let subject = Subject::Listing;
        let customer = if actor.role == Role::Customer {
            Some(actor.sub.clone())
        } else {
            query.customer
        };
        let mut request = r.request(Method::Get, ORDERS).query("limit", query.limit);
        if let Some(status) = query.status {
            request = request.query("status", status.as_str());
        }
        if let Some(customer) = customer {
            request = request.query("customer", customer);
        }
        if let Some(before) = query.before {
            request = request.query("cursor", cursor::encode(&before));
        }
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        let page: OrderPage = response.json().map_err(|e| from_remote(e, subject))?;
        // Belt and braces: never hand a customer someone else's order.
        if page.items.iter().all(|o| may_see(actor, o)) {
            Ok(page)
        } else {
            Err(OrderError::Unexpected(anyhow::anyhow!(
                "the order API listed other customers' orders for a customer filter"
            )))
        }
    }

    async fn transition(
        &self,
        actor: &Principal,
        id: OrderId,
        transition: Transition,
    ) -> Result<Order, OrderError> {
        let r = &self.remote;
        let subject = Subject::Order(id, Some(transition));
        let action = match transition {
            Transition::Cancel => "cancel",
            Transition::Ship => "ship",
            Transition::Deliver => "deliver",
        };
        let request = r
            .request(Method::Post, format!("{ORDERS}/{id}/{action}"))
            .auth(Auth::OnBehalfOf(actor.clone()));
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }
}

#[cfg(test)]
mod tests {
    use kernel::error::ApiError;

    use super::*;

    fn round_trip(error: OrderError, subject: Subject) -> OrderError {
        from_problem(ApiError::from(error).problem(), subject)
    }

    #[test]
    fn every_client_visible_error_survives_the_wire() {
        let o = OrderId::new();
        let p = ProductId::new();
        let cases = [
            (OrderError::NotFound(o), Subject::Order(o, None)),
            (
                OrderError::Forbidden("Role customer may not have an order shipped".into()),
                Subject::Order(o, Some(Transition::Ship)),
            ),
            (
                OrderError::UnknownProduct {
                    index: 2,
                    product_id: p,
                },
                Subject::Placing,
            ),
            (
                OrderError::InsufficientStock {
                    product_id: p,
                    requested: 5,
                    available: 1,
                },
                Subject::Placing,
            ),
            (
                OrderError::IllegalTransition {
                    id: o,
                    status: OrderStatus::PendingPayment,
                    action: "shipped",
                },
                Subject::Order(o, Some(Transition::Ship)),
            ),
            (
                OrderError::Invalid(vec![kernel::error::FieldError::new("items", "bad")]),
                Subject::Placing,
            ),
        ];
        for (error, subject) in cases {
            let expected = format!("{error:?}");
            assert_eq!(format!("{:?}", round_trip(error, subject)), expected);
        }
        assert!(matches!(
            round_trip(OrderError::Unavailable("x".into()), Subject::Listing),
            OrderError::Unavailable(_)
        ));
    }
}
