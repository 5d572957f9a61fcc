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
//! transitions are not retried. Errors map back onto [`OrderError`] from the problem's `code`
//! and members only ([`OrderProblem::decode`]; `title` and `detail` are prose and never read):
//! e.g. `illegal_transition` with `order_id`, `status` and `action`. 502/503/504, timeouts,
//! refused connections and an open breaker → `Unavailable`; any other code → `Unexpected`.

use async_trait::async_trait;
use kernel::{
    auth::{JwtKeys, Principal, Role},
    client::{Auth, Method, Remote, RemoteConfig, RemoteError},
    error::{Problem, Unavailable},
    http::cursor,
};

use crate::{
    CreateOrder, NewOrder, Order, OrderError, OrderId, OrderPage, OrderProblem, OrderQuery,
    OrderService, Transition,
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

/// The typed error a problem carries, read from its `code` and members only.
fn from_problem(problem: Problem) -> OrderError {
    OrderProblem::decode(&problem).unwrap_or_else(|| {
        OrderError::Unexpected(anyhow::anyhow!(
            "order answered {} ({}): {}",
            problem.status,
            problem.code,
            problem.detail
        ))
    })
}

fn from_remote(error: RemoteError) -> OrderError {
    match error {
        RemoteError::Unavailable {
            service,
            retry_after,
            ..
        } => OrderError::Unavailable(Unavailable::new(service, retry_after)),
        RemoteError::Problem { problem, .. } => from_problem(*problem),
        RemoteError::Unexpected(e) => OrderError::Unexpected(e),
    }
}

#[async_trait]
impl OrderService for HttpOrderService {
    async fn place(&self, actor: &Principal, order: NewOrder) -> Result<Order, OrderError> {
        let r = &self.remote;
        let body = CreateOrder {
            items: order.items().to_vec(),
        };
        let request = r
            .request(Method::Post, ORDERS)
            .auth(Auth::OnBehalfOf(actor.clone()))
            .idempotency_key(uuid::Uuid::new_v4().to_string())
            .json(&body)
            .map_err(from_remote)?;
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }

    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        let r = &self.remote;
        let response = r
            .send(r.request(Method::Get, format!("{ORDERS}/{id}")))
            .await
            .map_err(from_remote)?;
        let order: Order = response.json().map_err(from_remote)?;
        if may_see(actor, &order) {
            Ok(order)
        } else {
            Err(OrderError::NotFound(id))
        }
    }

    async fn list(&self, actor: &Principal, query: OrderQuery) -> Result<OrderPage, OrderError> {
        let r = &self.remote;
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
        let response = r.send(request).await.map_err(from_remote)?;
        let page: OrderPage = response.json().map_err(from_remote)?;
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
        let action = match transition {
            Transition::Cancel => "cancel",
            Transition::Ship => "ship",
            Transition::Deliver => "deliver",
        };
        let request = r
            .request(Method::Post, format!("{ORDERS}/{id}/{action}"))
            .auth(Auth::OnBehalfOf(actor.clone()));
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }
}

#[cfg(test)]
mod tests {
    use kernel::error::{ApiError, FieldError};
    use product_api::ProductId;

    use super::*;
    use crate::OrderStatus;

    /// What the server would send for `error`, as bytes on the wire, mapped back.
    fn round_trip(error: OrderError) -> OrderError {
        from_problem(wire(ApiError::from(error).problem()))
    }

    /// `problem` serialized as the server sends it and parsed as the client reads it.
    fn wire(problem: Problem) -> Problem {
        let body = serde_json::to_vec(&problem).unwrap();
        kernel::client::parse_problem(problem.status, &body)
    }

    fn cases() -> Vec<OrderError> {
        let o = OrderId::new();
        let p = ProductId::new();
        vec![
            OrderError::NotFound(o),
            OrderError::Forbidden("Role customer may not have an order shipped".into()),
            OrderError::UnknownProduct {
                index: 2,
                product_id: p,
            },
            OrderError::InsufficientStock {
                product_id: p,
                requested: 5,
                available: 1,
            },
            OrderError::IllegalTransition {
                id: o,
                status: OrderStatus::PendingPayment,
                action: "shipped",
            },
            OrderError::IllegalTransition {
                id: o,
                status: OrderStatus::Delivered,
                action: "cancelled",
            },
            OrderError::Invalid(vec![FieldError::new("items", "bad")]),
        ]
    }

    #[test]
    fn every_client_visible_error_survives_the_wire() {
        for error in cases() {
            let expected = format!("{error:?}");
            assert_eq!(format!("{:?}", round_trip(error)), expected);
        }
        assert!(matches!(
            round_trip(OrderError::Unavailable(Unavailable::new(
                "order",
                std::time::Duration::from_secs(2)
            ))),
            OrderError::Unavailable(_)
        ));
    }

    #[test]
    fn the_client_never_reads_prose() {
        for error in cases() {
            let expected = format!("{error:?}");
            let mut problem = ApiError::from(error).problem();
            problem.title = "Lorem ipsum".into();
            problem.detail = "Order 00000000-0000-0000-0000-000000000000 is paid.".into();
            for e in &mut problem.errors {
                // Field errors are data (field) and prose (message): the message may change.
                if e.field.ends_with("product_id") {
                    e.message = "nonsense".into();
                }
            }
            let decoded = format!("{:?}", from_problem(wire(problem)));
            assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn an_unknown_code_is_unexpected() {
        let mut problem = ApiError::from(OrderError::NotFound(OrderId::new())).problem();
        problem.code = "something_new".into();
        assert!(matches!(from_problem(problem), OrderError::Unexpected(_)));
    }
}
