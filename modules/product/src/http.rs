//! HTTP handlers of the product module, mounted under `/api/v1`. Reads are public; writes
//! need the `admin` role; the inventory commands (`/reservations`) need `service` (a
//! neighbour module in a split deployment) or `admin`. Each handler parses its input into domain values, calls the
//! [`ProductService`] and shapes the response; no rule lives here.

use actix_web::{HttpResponse, delete, get, http::StatusCode, patch, post, put, web};
use kernel::{
    auth::{AdminOnly, AllowedRoles, Authorized, Role},
    error::ApiError,
    http::{
        IfMatch, Json, Query,
        docs::{
            AuthProblems, BodyProblems, ConflictProblem, NotFoundProblem, PreconditionProblem,
            UnavailableProblem, ValidationProblem,
        },
        json_with_etag, with_location,
    },
};
use product_api::{
    NewProduct, Product, ProductChanges, ProductId, ProductInput, ProductListParams, ProductPage,
    ProductPatch, ProductQuery, ProductService, Reservation, ReservationId, ReservationInput,
    ReservationLines,
};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::cache::ReadCache;

pub(crate) const TAG: &str = "product";

/// Mounts the product handlers; the binary puts them under `/api/v1`.
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_product)
        .service(list_products)
        .service(get_product)
        .service(replace_product)
        .service(patch_product)
        .service(delete_product)
        .service(reserve_stock)
        .service(release_reservation)
        .service(commit_reservation);
}

/// Neighbour modules (`service` tokens) and admins: the inventory commands.
#[derive(Debug)]
pub struct InventoryClerks;

impl AllowedRoles for InventoryClerks {
    const ROLES: &'static [Role] = &[Role::Service, Role::Admin];
}

type Products = web::Data<dyn ProductService>;

/// Create a product.
///
/// The SKU must be unique. The response carries the new product's ETag and Location.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_product",
    request_body = ProductInput,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created", body = Product,
            headers(("ETag" = String, description = "Current revision"), ("Location" = String))),
        BodyProblems,
        AuthProblems,
        ConflictProblem,
        ValidationProblem,
    )
)]
#[post("/products")]
async fn create_product(
    _admin: Authorized<AdminOnly>,
    products: Products,
    body: Json<ProductInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewProduct::try_from)?;
    let product = products.create(input).await?;
    Ok(with_location(
        json_with_etag(StatusCode::CREATED, &product, product.version),
        format!("/api/v1/products/{}", product.id),
    ))
}

/// List products.
///
/// Filter by text (`q`), price range and currency; sort by `name`, `price` or `created_at`
/// (prefix `-` for descending). Pages are cursor-based: pass `next` as `cursor`.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_products",
    security(()),
    params(ProductListParams),
    responses(
        (status = 200, description = "One page of products", body = ProductPage),
        ValidationProblem,
    )
)]
#[get("/products")]
async fn list_products(
    products: Products,
    params: Query<ProductListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(ProductQuery::try_from)?;
    Ok(HttpResponse::Ok().json(products.list(query).await?))
}

/// Get a product.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_product",
    security(()),
    params(("id" = ProductId, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = Product,
            headers(("ETag" = String, description = "Current revision; send it as If-Match to update"))),
        NotFoundProblem,
    )
)]
#[get("/products/{id}")]
async fn get_product(
    products: Products,
    cache: web::Data<ReadCache>,
    id: web::Path<ProductId>,
) -> Result<HttpResponse, ApiError> {
    // From the module's read cache (see `crate::cache`) when it can: the same bytes and
    // headers as a fresh read.
    let ready = cache.response(products.get_ref(), id.into_inner()).await?;
    Ok(ready.respond())
}

/// Replace a product.
///
/// Every writable field is set. With `If-Match`, the update applies only to that revision.
/// Stock may not drop below what is reserved. A replacement with the current content changes
/// nothing: the version and ETag stay.
#[utoipa::path(
    tag = TAG,
    operation_id = "replace_product",
    params(
        ("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being replaced"),
    ),
    request_body = ProductInput,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Replaced", body = Product, headers(("ETag" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        PreconditionProblem,
        ValidationProblem,
    )
)]
#[put("/products/{id}")]
async fn replace_product(
    _admin: Authorized<AdminOnly>,
    products: Products,
    id: web::Path<ProductId>,
    if_match: IfMatch,
    body: Json<ProductInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewProduct::try_from)?;
    let product = products
        .update(
            id.into_inner(),
            if_match.into(),
            ProductChanges::from(input),
        )
        .await?;
    Ok(json_with_etag(StatusCode::OK, &product, product.version))
}

/// Update some fields of a product.
///
/// A JSON merge patch: fields that are absent (or null) stay as they are. A patch that
/// changes nothing keeps the version and ETag, so other clients' `If-Match` stays current.
#[utoipa::path(
    tag = TAG,
    operation_id = "patch_product",
    params(
        ("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being changed"),
    ),
    request_body(content = ProductPatch, content_type = "application/merge-patch+json"),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Updated", body = Product, headers(("ETag" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        PreconditionProblem,
        ValidationProblem,
    )
)]
#[patch("/products/{id}")]
async fn patch_product(
    _admin: Authorized<AdminOnly>,
    products: Products,
    id: web::Path<ProductId>,
    if_match: IfMatch,
    body: Json<ProductPatch>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.parse(ProductChanges::try_from)?;
    let product = products
        .update(id.into_inner(), if_match.into(), changes)
        .await?;
    Ok(json_with_etag(StatusCode::OK, &product, product.version))
}

/// Delete a product.
///
/// Refused while any of its stock is reserved.
#[utoipa::path(
    tag = TAG,
    operation_id = "delete_product",
    params(
        ("id" = ProductId, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being deleted"),
    ),
    security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Deleted"),
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        PreconditionProblem,
    )
)]
#[delete("/products/{id}")]
async fn delete_product(
    _admin: Authorized<AdminOnly>,
    products: Products,
    id: web::Path<ProductId>,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    products.delete(id.into_inner(), if_match.into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reserve stock.
///
/// Holds every line or none, and answers with each line's SKU, name and unit price as they
/// were when the stock was taken, so the caller needs no separate read of the catalog.
/// Idempotent by reservation id: the same id with the same lines returns the existing
/// reservation (201 again, at its first prices) and reserves nothing more; the same id with
/// other lines is a 409. A short product is a 409 naming it, an unknown one a 404.
/// For the order module of a split deployment (role `service`) and admins.
#[utoipa::path(
    tag = TAG,
    operation_id = "reserve_stock",
    request_body = ReservationInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first response is replayed for 24 h")),
    security(("bearer" = ["service", "admin"])),
    responses(
        (status = 201, description = "Reserved (or already reserved with these lines)", body = Reservation,
            headers(("Location" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        ValidationProblem,
        UnavailableProblem,
    )
)]
#[post("/reservations")]
async fn reserve_stock(
    _clerk: Authorized<InventoryClerks>,
    products: Products,
    body: Json<ReservationInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, lines) =
        body.parse(|input| ReservationLines::parse(input.lines).map(|lines| (input.id, lines)))?;
    let reservation = products.reserve(id, lines).await?;
    Ok(with_location(
        HttpResponse::Created().json(&reservation),
        format!("/api/v1/reservations/{}", reservation.id),
    ))
}

/// Release a reservation.
///
/// Returns its units to `available` (units of a committed reservation come back into
/// `stock`). Idempotent. For role `service` and admins.
#[utoipa::path(
    tag = TAG,
    operation_id = "release_reservation",
    params(("id" = ReservationId, Path, description = "Reservation id")),
    security(("bearer" = ["service", "admin"])),
    responses(
        (status = 200, description = "Released", body = Reservation),
        AuthProblems,
        NotFoundProblem,
        UnavailableProblem,
    )
)]
#[post("/reservations/{id}/release")]
async fn release_reservation(
    _clerk: Authorized<InventoryClerks>,
    products: Products,
    id: web::Path<ReservationId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(products.release(id.into_inner()).await?))
}

/// Commit a reservation.
///
/// Takes the reserved units out of `stock` (the goods leave). Idempotent; a released
/// reservation answers 409. For role `service` and admins.
#[utoipa::path(
    tag = TAG,
    operation_id = "commit_reservation",
    params(("id" = ReservationId, Path, description = "Reservation id")),
    security(("bearer" = ["service", "admin"])),
    responses(
        (status = 200, description = "Committed", body = Reservation),
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        UnavailableProblem,
    )
)]
#[post("/reservations/{id}/commit")]
async fn commit_reservation(
    _clerk: Authorized<InventoryClerks>,
    products: Products,
    id: web::Path<ReservationId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(products.commit(id.into_inner()).await?))
}
