//! [`HttpProductService`]: the [`ProductService`] trait over the product module's public REST
//! API (feature `client`), for deployments where product runs elsewhere.
//!
//! Every call goes through a [`Remote`] (service token, request id and `traceparent`,
//! timeouts, retries of idempotent calls, circuit breaker). Retries are safe:
//!
//! - `create` sends a fresh `Idempotency-Key` per call, reused by its retries;
//! - `reserve` sends `Idempotency-Key: <reservation id>` (and reserving is idempotent by id
//!   anyway), so a retried reservation never reserves twice;
//! - `release` and `commit` are idempotent by definition and send `release:<id>` /
//!   `commit:<id>` as keys;
//! - `update` and `delete` are never retried.
//!
//! Error responses map back onto [`ProductError`]: 404 → `NotFound` / `ReservationNotFound`,
//! 409 → the conflict its detail names (`InsufficientStock` with product id, requested and
//! available, parsed from the detail the server renders from the same enum), 412 →
//! `PreconditionFailed`, 422 → `Invalid` with the field errors, 502/503/504, timeouts,
//! refused connections and an open breaker → `Unavailable`, anything else → `Unexpected`.

use std::str::FromStr;

use async_trait::async_trait;
use kernel::{
    auth::JwtKeys,
    client::{Auth, Method, Remote, RemoteConfig, RemoteError, Request},
    error::Problem,
    http::IfMatch,
};
use serde_json::{Map, Value, json};

use crate::{
    NewProduct, Product, ProductChanges, ProductError, ProductId, ProductPage, ProductQuery,
    ProductService, Reservation, ReservationId, ReservationInput, ReservationLines,
    ReservationStatus,
};

const PRODUCTS: &str = "/api/v1/products";
const RESERVATIONS: &str = "/api/v1/reservations";

/// [`ProductService`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpProductService {
    remote: Remote,
    auth: Auth,
}

impl HttpProductService {
    /// A client of the product API at `config.base_url`, calling as module `caller` (the
    /// subject of its `service` tokens) with tokens signed by `keys` (the shared secret).
    ///
    /// # Errors
    /// A malformed base URL, or an HTTP client that cannot be built.
    pub fn new(caller: &str, keys: JwtKeys, config: &RemoteConfig) -> anyhow::Result<Self> {
        Ok(Self::from_remote(Remote::new(
            "product", caller, keys, config,
        )?))
    }

    pub fn from_remote(remote: Remote) -> Self {
        Self {
            remote,
            auth: Auth::Service,
        }
    }

    /// Calls with `auth` instead of the `service` token. The catalog writes (`create`,
    /// `update`, `delete`) need role `admin` on the product API: with the default `service`
    /// token they fail with a 403, reported as [`ProductError::Unexpected`].
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn req(&self, method: Method, path: impl Into<String>) -> Request {
        self.remote.request(method, path).auth(self.auth.clone())
    }
}

fn if_match_header(if_match: &IfMatch) -> Option<String> {
    match if_match {
        IfMatch::Absent => None,
        IfMatch::Any => Some("*".to_owned()),
        IfMatch::Tags(tags) => Some(tags.join(", ")),
    }
}

fn product_body(p: &NewProduct) -> Value {
    json!({
        "sku": p.sku.as_str(),
        "name": p.name.as_str(),
        "description": p.description.as_str(),
        "price": p.price,
        "stock": p.stock,
    })
}

/// What a 404 was about, when the request itself does not say.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Product(ProductId),
    Reservation(ReservationId),
    /// A reservation request: the detail names the unknown product.
    Reserving(ReservationId),
}

/// The first UUID in `text` after `prefix` (case-insensitive on the prefix).
fn uuid_after(text: &str, prefix: &str) -> Option<uuid::Uuid> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find(&prefix.to_ascii_lowercase())? + prefix.len();
    text.get(start..start + 36)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
}

/// The integer in `text` right after `prefix`.
fn int_after<T: FromStr>(text: &str, prefix: &str) -> Option<T> {
    let start = text.find(prefix)? + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `InsufficientStock` from the detail `Insufficient stock for product <id>: requested <n>,
/// available <m>.` (the server renders it from [`ProductError`]'s message).
fn insufficient_stock(detail: &str) -> Option<ProductError> {
    Some(ProductError::InsufficientStock {
        product_id: ProductId(uuid_after(detail, "insufficient stock for product ")?),
        requested: int_after(detail, "requested ")?,
        available: int_after(detail, "available ")?,
    })
}

fn from_problem(problem: Problem, subject: Subject) -> ProductError {
    let detail = problem.detail.as_str();
    let lower = detail.to_ascii_lowercase();
    let unexpected = |p: &Problem| {
        ProductError::Unexpected(anyhow::anyhow!(
            "product answered {}: {}",
            p.status,
            p.detail
        ))
    };
    match problem.status {
        404 => match subject {
            Subject::Product(id) => ProductError::NotFound(id),
            Subject::Reservation(id) => ProductError::ReservationNotFound(id),
            Subject::Reserving(id) => match uuid_after(detail, "product ") {
                Some(product) => ProductError::NotFound(ProductId(product)),
                None => ProductError::ReservationNotFound(id),
            },
        },
        409 => {
            if lower.starts_with("insufficient stock") {
                insufficient_stock(detail).unwrap_or_else(|| unexpected(&problem))
            } else if lower.starts_with("a product with sku") {
                let sku = detail
                    .split('"')
                    .nth(1)
                    .map(str::to_owned)
                    .unwrap_or_default();
                ProductError::DuplicateSku(sku)
            } else if lower.starts_with("stock cannot be set to") {
                match (int_after(detail, "set to "), int_after(detail, ": ")) {
                    (Some(requested), Some(reserved)) => ProductError::StockBelowReserved {
                        requested,
                        reserved,
                    },
                    _ => unexpected(&problem),
                }
            } else if lower.contains("has reserved stock") {
                match (uuid_after(detail, "product "), subject) {
                    (Some(id), _) => ProductError::HasReservations(ProductId(id)),
                    (None, Subject::Product(id)) => ProductError::HasReservations(id),
                    _ => unexpected(&problem),
                }
            } else if lower.contains("already exists with different lines") {
                match subject {
                    Subject::Reserving(id) | Subject::Reservation(id) => {
                        ProductError::ReservationConflict(id)
                    }
                    Subject::Product(_) => unexpected(&problem),
                }
            } else if let (Subject::Reservation(id), Some(status)) = (
                subject,
                [ReservationStatus::Released, ReservationStatus::Committed]
                    .into_iter()
                    .find(|s| lower.contains(&format!(" is {s} and cannot be"))),
            ) {
                let action = if lower.ends_with("cannot be released.") {
                    "released"
                } else {
                    "committed"
                };
                ProductError::ReservationClosed { id, status, action }
            } else {
                unexpected(&problem)
            }
        }
        412 => ProductError::PreconditionFailed,
        // The reservation id is the Idempotency-Key: reusing it for other lines is refused by
        // the idempotency layer before the service sees it.
        422 if matches!(subject, Subject::Reserving(_))
            && problem
                .errors
                .iter()
                .any(|e| e.field.eq_ignore_ascii_case("idempotency-key")) =>
        {
            match subject {
                Subject::Reserving(id) => ProductError::ReservationConflict(id),
                _ => ProductError::Invalid(problem.errors),
            }
        }
        422 => ProductError::Invalid(problem.errors),
        502..=504 => {
            ProductError::Unavailable(format!("product answered {}: {detail}", problem.status))
        }
        _ => unexpected(&problem),
    }
}

fn from_remote(error: RemoteError, subject: Subject) -> ProductError {
    match error {
        RemoteError::Unavailable { .. } => ProductError::Unavailable(error.to_string()),
        RemoteError::Problem { problem, .. } => from_problem(*problem, subject),
        RemoteError::Unexpected(e) => ProductError::Unexpected(e),
    }
}

#[async_trait]
impl ProductService for HttpProductService {
    async fn create(&self, input: NewProduct) -> Result<Product, ProductError> {
        let r = &self.remote;
        // No product id yet: a 404 cannot happen here.
        let subject = Subject::Product(ProductId(uuid::Uuid::nil()));
        let request = self
            .req(Method::Post, PRODUCTS)
            .idempotency_key(uuid::Uuid::new_v4().to_string())
            .json(&product_body(&input))
            .map_err(|e| from_remote(e, subject))?;
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn get(&self, id: ProductId) -> Result<Product, ProductError> {
        let r = &self.remote;
        let subject = Subject::Product(id);
        let response = r
            .send(self.req(Method::Get, format!("{PRODUCTS}/{id}")))
            .await
            .map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn list(&self, query: ProductQuery) -> Result<ProductPage, ProductError> {
        let r = &self.remote;
        let subject = Subject::Product(ProductId(uuid::Uuid::nil()));
        let sort = format!(
            "{}{}",
            if query.sort.descending { "-" } else { "" },
            match query.sort.key {
                crate::SortKey::Name => "name",
                crate::SortKey::Price => "price",
                crate::SortKey::CreatedAt => "created_at",
            }
        );
        let mut request = self
            .req(Method::Get, PRODUCTS)
            .query("sort", sort)
            .query("limit", query.limit);
        if let Some(q) = &query.q {
            request = request.query("q", q);
        }
        if let Some(v) = query.min_price {
            request = request.query("min_price", v);
        }
        if let Some(v) = query.max_price {
            request = request.query("max_price", v);
        }
        if let Some(c) = &query.currency {
            request = request.query("currency", c.as_str());
        }
        if let Some(after) = &query.after {
            request = request.query("cursor", after.encode());
        }
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn update(
        &self,
        id: ProductId,
        if_match: IfMatch,
        changes: ProductChanges,
    ) -> Result<Product, ProductError> {
        let r = &self.remote;
        let subject = Subject::Product(id);
        let path = format!("{PRODUCTS}/{id}");
        // Every field given: a PUT; otherwise a merge patch of the given ones.
        let request = match changes {
            ProductChanges {
                sku: Some(sku),
                name: Some(name),
                description: Some(description),
                price: Some(price),
                stock: Some(stock),
            } => self.req(Method::Put, path).json(&product_body(&NewProduct {
                sku,
                name,
                description,
                price,
                stock,
            })),
            changes => {
                let mut patch = Map::new();
                if let Some(v) = &changes.sku {
                    patch.insert("sku".into(), v.as_str().into());
                }
                if let Some(v) = &changes.name {
                    patch.insert("name".into(), v.as_str().into());
                }
                if let Some(v) = &changes.description {
                    patch.insert("description".into(), v.as_str().into());
                }
                if let Some(v) = &changes.price {
                    patch.insert("price".into(), json!(v));
                }
                if let Some(v) = changes.stock {
                    patch.insert("stock".into(), v.into());
                }
                self.req(Method::Patch, path).json(&Value::Object(patch))
            }
        }
        .map_err(|e| from_remote(e, subject))?;
        let request = match if_match_header(&if_match) {
            Some(value) => request.header("if-match", value),
            None => request,
        };
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn delete(&self, id: ProductId, if_match: IfMatch) -> Result<(), ProductError> {
        let r = &self.remote;
        let mut request = self.req(Method::Delete, format!("{PRODUCTS}/{id}"));
        if let Some(value) = if_match_header(&if_match) {
            request = request.header("if-match", value);
        }
        r.send(request)
            .await
            .map(drop)
            .map_err(|e| from_remote(e, Subject::Product(id)))
    }

    async fn reserve(
        &self,
        id: ReservationId,
        lines: ReservationLines,
    ) -> Result<Reservation, ProductError> {
        let r = &self.remote;
        let subject = Subject::Reserving(id);
        let body = ReservationInput {
            id,
            lines: lines.lines().to_vec(),
        };
        let request = self
            .req(Method::Post, RESERVATIONS)
            .idempotency_key(id.to_string())
            .json(&body)
            .map_err(|e| from_remote(e, subject))?;
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }

    async fn release(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.close(id, "release").await
    }

    async fn commit(&self, id: ReservationId) -> Result<Reservation, ProductError> {
        self.close(id, "commit").await
    }
}

impl HttpProductService {
    async fn close(&self, id: ReservationId, action: &str) -> Result<Reservation, ProductError> {
        let r = &self.remote;
        let subject = Subject::Reservation(id);
        let request = self
            .req(Method::Post, format!("{RESERVATIONS}/{id}/{action}"))
            .idempotency_key(format!("{action}:{id}"));
        let response = r.send(request).await.map_err(|e| from_remote(e, subject))?;
        response.json().map_err(|e| from_remote(e, subject))
    }
}

#[cfg(test)]
mod tests {
    use kernel::error::{ApiError, FieldError};

    use super::*;

    /// What the server would send for `error`, mapped back.
    fn round_trip(error: ProductError, subject: Subject) -> ProductError {
        from_problem(ApiError::from(error).problem(), subject)
    }

    #[test]
    fn every_client_visible_error_survives_the_wire() {
        let p = ProductId::new();
        let r = ReservationId::new();
        let cases = [
            (ProductError::NotFound(p), Subject::Product(p)),
            (ProductError::NotFound(p), Subject::Reserving(r)),
            (
                ProductError::ReservationNotFound(r),
                Subject::Reservation(r),
            ),
            (
                ProductError::DuplicateSku("TEA-1".into()),
                Subject::Product(p),
            ),
            (ProductError::PreconditionFailed, Subject::Product(p)),
            (
                ProductError::StockBelowReserved {
                    requested: 2,
                    reserved: 5,
                },
                Subject::Product(p),
            ),
            (ProductError::HasReservations(p), Subject::Product(p)),
            (
                ProductError::InsufficientStock {
                    product_id: p,
                    requested: 7,
                    available: 3,
                },
                Subject::Reserving(r),
            ),
            (ProductError::ReservationConflict(r), Subject::Reserving(r)),
            (
                ProductError::ReservationClosed {
                    id: r,
                    status: ReservationStatus::Released,
                    action: "committed",
                },
                Subject::Reservation(r),
            ),
            (
                ProductError::Invalid(vec![FieldError::new("lines", "must not be empty")]),
                Subject::Reserving(r),
            ),
        ];
        for (error, subject) in cases {
            let expected = format!("{error:?}");
            assert_eq!(format!("{:?}", round_trip(error, subject)), expected);
        }
    }

    #[test]
    fn unavailability_maps_to_unavailable_and_to_503() {
        let e = ProductError::Unavailable("down".into());
        assert_eq!(ApiError::from(e).problem().status, 503);
        let mapped = from_problem(
            ApiError::from(ProductError::Unavailable("x".into())).problem(),
            Subject::Product(ProductId::new()),
        );
        assert!(matches!(mapped, ProductError::Unavailable(_)));
    }
}
