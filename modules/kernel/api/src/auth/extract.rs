//! [`Principal`] as an actix-web extractor (feature `actix`): the bearer token of the
//! request, verified by the [`Authenticator`] the application registered.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::{Authenticator, Principal};
use crate::error::{ApiError, ErrorKind};

/// The token of an `Authorization: Bearer <jwt>` header value (scheme case-insensitive),
/// or `None` for any other scheme, an empty token or a value that is not text.
pub fn bearer_token(value: &header::HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Principal {
    /// The caller of `req`, from its bearer token (see [`bearer_token`]).
    ///
    /// # Errors
    /// 401 problems as for the extractor; 500 when no [`Authenticator`] is registered.
    pub fn from_http(req: &HttpRequest) -> Result<Self, ApiError> {
        let authenticator = req
            .app_data::<web::Data<dyn Authenticator>>()
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "no Authenticator is registered as app data"
                ))
            })?;
        let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unauthorized,
                "This operation needs a bearer token (Authorization: Bearer <jwt>).",
            )
        })?;
        let token = bearer_token(value).ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unauthorized,
                "The Authorization header must be `Bearer <jwt>`.",
            )
        })?;
        authenticator.authenticate(token)
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = Principal::from_http(req);
        Box::pin(async move { result })
    }
}
