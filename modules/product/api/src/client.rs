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
//! Error responses map back onto [`ProductError`] from the problem's `code` and members only
//! ([`ProductProblem::decode`]; `title` and `detail` are prose and never read): e.g.
//! `insufficient_stock` with `product_id`, `requested` and `available`. A reservation whose id
//! (its `Idempotency-Key`) was used for other lines (`idempotency_key_reused`) →
//! `ReservationConflict`; 502/503/504, timeouts, refused connections and an open breaker →
//! `Unavailable`; any other code → `Unexpected`.

use async_trait::async_trait;
use kernel::{
    auth::JwtKeys,
    client::{Auth, Method, Remote, RemoteConfig, RemoteError, Request},
    error::Problem,
    http::{idempotency::IDEMPOTENCY_KEY_REUSED, if_match_value},
};
use kernel_api::{error::Unavailable, version::ExpectedVersion};
use serde_json::{Map, Value, json};

use crate::{
    NewProduct, Product, ProductChanges, ProductError, ProductId, ProductPage, ProductProblem,
    ProductQuery, ProductService, Reservation, ReservationId, ReservationInput, ReservationLines,
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

fn product_body(p: &NewProduct) -> Value {
    json!({
        "sku": p.sku.as_str(),
        "name": p.name.as_str(),
        "description": p.description.as_str(),
        "price": p.price,
        "stock": p.stock,
    })
}

/// The typed error a problem carries, read from its `code` and members only (never from
/// `title` or `detail`, which are prose for people).
fn from_problem(problem: Problem) -> ProductError {
    ProductProblem::decode(&problem).unwrap_or_else(|| {
        ProductError::Unexpected(anyhow::anyhow!(
            "product answered {} ({}): {}",
            problem.status,
            problem.code,
            problem.detail
        ))
    })
}

fn from_remote(error: RemoteError) -> ProductError {
    match error {
        RemoteError::Unavailable {
            service,
            retry_after,
            ..
        } => ProductError::Unavailable(Unavailable::new(service, retry_after)),
        RemoteError::Problem { problem, .. } => from_problem(*problem),
        RemoteError::Unexpected(e) => ProductError::Unexpected(e),
    }
}

#[async_trait]
impl ProductService for HttpProductService {
    async fn create(&self, input: NewProduct) -> Result<Product, ProductError> {
        let r = &self.remote;
        let request = self
            .req(Method::Post, PRODUCTS)
            .idempotency_key(uuid::Uuid::new_v4().to_string())
            .json(&product_body(&input))
            .map_err(from_remote)?;
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }

    async fn get(&self, id: ProductId) -> Result<Product, ProductError> {
        let r = &self.remote;
        let response = r
            .send(self.req(Method::Get, format!("{PRODUCTS}/{id}")))
            .await
            .map_err(from_remote)?;
        response.json().map_err(from_remote)
    }

    async fn list(&self, query: ProductQuery) -> Result<ProductPage, ProductError> {
        let r = &self.remote;
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
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }

    async fn update(
        &self,
        id: ProductId,
        expected: ExpectedVersion,
        changes: ProductChanges,
    ) -> Result<Product, ProductError> {
        let r = &self.remote;
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
        .map_err(from_remote)?;
        let request = match if_match_value(&expected) {
            Some(value) => request.header("if-match", value),
            None => request,
        };
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }

    async fn delete(&self, id: ProductId, expected: ExpectedVersion) -> Result<(), ProductError> {
        let r = &self.remote;
        let mut request = self.req(Method::Delete, format!("{PRODUCTS}/{id}"));
        if let Some(value) = if_match_value(&expected) {
            request = request.header("if-match", value);
        }
        r.send(request).await.map(drop).map_err(from_remote)
    }

    async fn reserve(
        &self,
        id: ReservationId,
        lines: ReservationLines,
    ) -> Result<Reservation, ProductError> {
        let r = &self.remote;
        let body = ReservationInput {
            id,
            lines: lines.lines().to_vec(),
        };
        let request = self
            .req(Method::Post, RESERVATIONS)
            .idempotency_key(id.to_string())
            .json(&body)
            .map_err(from_remote)?;
        // The reservation id is the Idempotency-Key: reusing it for other lines is refused by
        // the idempotency layer before the service sees it.
        let reused = |e: RemoteError| match e.problem() {
            Some(p) if p.code == IDEMPOTENCY_KEY_REUSED => ProductError::ReservationConflict(id),
            _ => from_remote(e),
        };
        let response = r.send(request).await.map_err(reused)?;
        response.json().map_err(from_remote)
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
        let request = self
            .req(Method::Post, format!("{RESERVATIONS}/{id}/{action}"))
            .idempotency_key(format!("{action}:{id}"));
        let response = r.send(request).await.map_err(from_remote)?;
        response.json().map_err(from_remote)
    }
}

#[cfg(test)]
mod tests {
    use kernel::error::{ApiError, FieldError};

    use super::*;
    use crate::ReservationStatus;

    /// What the server would send for `error`, as bytes on the wire, mapped back.
    fn round_trip(error: ProductError) -> ProductError {
        from_problem(wire(ApiError::from(error).problem()))
    }

    /// `problem` serialized as the server sends it and parsed as the client reads it.
    fn wire(problem: Problem) -> Problem {
        let body = serde_json::to_vec(&problem).unwrap();
        kernel::client::parse_problem(problem.status, &body)
    }

    fn cases() -> Vec<ProductError> {
        let p = ProductId::new();
        let r = ReservationId::new();
        vec![
            ProductError::NotFound(p),
            ProductError::ReservationNotFound(r),
            ProductError::DuplicateSku("TEA-1".into()),
            ProductError::PreconditionFailed,
            ProductError::StockBelowReserved {
                requested: 2,
                reserved: 5,
            },
            ProductError::HasReservations(p),
            ProductError::InsufficientStock {
                product_id: p,
                requested: 7,
                available: 3,
            },
            ProductError::ReservationConflict(r),
            ProductError::ReservationClosed {
                id: r,
                status: ReservationStatus::Released,
                action: "committed",
            },
            ProductError::ReservationClosed {
                id: r,
                status: ReservationStatus::Committed,
                action: "released",
            },
            ProductError::Invalid(vec![FieldError::new("lines", "must not be empty")]),
        ]
    }

    #[test]
    fn every_client_visible_error_survives_the_wire() {
        for error in cases() {
            let expected = format!("{error:?}");
            assert_eq!(format!("{:?}", round_trip(error)), expected);
        }
    }

    #[test]
    fn the_client_never_reads_prose() {
        for error in cases() {
            let expected = format!("{error:?}");
            let mut problem = ApiError::from(error).problem();
            problem.title = "Lorem ipsum".into();
            problem.detail = "Dolor sit amet 00000000-0000-0000-0000-000000000000: 1, 2.".into();
            assert_eq!(format!("{:?}", from_problem(wire(problem))), expected);
        }
    }

    #[test]
    fn every_variant_carries_its_code_and_figures() {
        let p = ProductId::new();
        let problem = ApiError::from(ProductError::InsufficientStock {
            product_id: p,
            requested: 7,
            available: 3,
        })
        .problem();
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["code"], "insufficient_stock");
        assert_eq!(json["product_id"], p.to_string());
        assert_eq!(json["requested"], 7);
        assert_eq!(json["available"], 3);
        assert_eq!(json["status"], 409);
    }

    #[test]
    fn unavailability_maps_to_unavailable_and_to_503() {
        let down = || Unavailable::new("product", std::time::Duration::from_secs(3));
        let api = ApiError::from(ProductError::Unavailable(down()));
        assert_eq!((api.problem().status, api.retry_after()), (503, Some(3)));
        let mapped = from_problem(ApiError::from(ProductError::Unavailable(down())).problem());
        assert!(matches!(mapped, ProductError::Unavailable(_)));
    }

    #[test]
    fn an_unknown_code_is_unexpected() {
        let mut problem = ApiError::from(ProductError::PreconditionFailed).problem();
        problem.code = "something_new".into();
        assert!(matches!(from_problem(problem), ProductError::Unexpected(_)));
    }
}
