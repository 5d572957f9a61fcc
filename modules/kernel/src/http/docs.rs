//! Problem responses shared by many operations, for `#[utoipa::path(responses(...))]`, so
//! each handler lists only what is particular to it.

use utoipa::IntoResponses;

use crate::error::Problem;

/// 401 and 403: the operation needs a bearer token with a particular role.
#[derive(Debug, IntoResponses)]
pub enum AuthProblems {
    #[response(
        status = 401,
        description = "No token, or an expired, tampered or malformed one",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The token's role may not do this",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// 400, 413 and 415: the request body is not an acceptable JSON document.
#[derive(Debug, IntoResponses)]
pub enum BodyProblems {
    #[response(
        status = 400,
        description = "The body is not JSON at all",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 413,
        description = "The body is larger than the configured limit",
        content_type = "application/problem+json"
    )]
    PayloadTooLarge(Problem),
    #[response(
        status = 415,
        description = "The body is not application/json",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
}

/// 422: fields or parameters with wrong types, unknown names or values out of range; the
/// `errors` list names every one.
#[derive(Debug, IntoResponses)]
#[response(
    status = 422,
    description = "Invalid fields or parameters, each named in `errors`",
    content_type = "application/problem+json"
)]
pub struct ValidationProblem(pub Problem);

/// 404: the resource does not exist.
#[derive(Debug, IntoResponses)]
#[response(
    status = 404,
    description = "No such resource",
    content_type = "application/problem+json"
)]
pub struct NotFoundProblem(pub Problem);

/// 409: the request conflicts with the resource's current state.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "Conflicts with the current state (the detail says how)",
    content_type = "application/problem+json"
)]
pub struct ConflictProblem(pub Problem);

/// 412: `If-Match` names a revision that is no longer current.
#[derive(Debug, IntoResponses)]
#[response(
    status = 412,
    description = "If-Match does not match the current ETag",
    content_type = "application/problem+json"
)]
pub struct PreconditionProblem(pub Problem);

/// 503: a module this operation needs is unavailable (a split deployment's neighbour is
/// down, or its circuit breaker is open).
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "A service this operation needs is unavailable",
    content_type = "application/problem+json"
)]
pub struct UnavailableProblem(pub Problem);
