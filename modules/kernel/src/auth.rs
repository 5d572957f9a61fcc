//! JWT bearer authentication (HS256 with the configured secret) and roles.
//!
//! Handlers take a [`Principal`]; it answers 401 when the token is missing, malformed,
//! tampered with or expired, and [`Principal::require`] answers 403 for a wrong role.

use std::{fmt, future::Future, pin::Pin, str::FromStr};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    config::AuthSettings,
    error::{ApiError, ErrorKind},
};

/// Who a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Clinician,
    Customer,
    Service,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Clinician, Role::Customer, Role::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Customer => "customer",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: expected admin, clinician, customer or service")
            })
    }
}

/// The claims Tessera signs and reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

/// The token of an `Authorization: Bearer <jwt>` header value (scheme case-insensitive),
/// or `None` for any other scheme, an empty token or a value that is not text.
pub fn bearer_token(value: &header::HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Signing and verification keys for the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    default_ttl: u64,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.jwt_secret.as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            default_ttl: settings.token_ttl_secs,
        }
    }

    /// Signs a token for `sub` with `role`, valid for `ttl_secs` (the configured default when
    /// `None`).
    ///
    /// # Errors
    /// Only if signing fails, which HS256 with a non-empty secret does not.
    pub fn issue(&self, sub: &str, role: Role, ttl_secs: Option<u64>) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            iss: self.issuer.clone(),
            iat: now,
            exp: now + ttl_secs.unwrap_or(self.default_ttl),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("cannot sign the token")
    }

    /// # Errors
    /// 401 problems: expired, bad signature, wrong issuer or malformed.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let detail = match e.kind() {
                    K::ExpiredSignature => "The bearer token has expired.",
                    K::InvalidSignature => "The bearer token's signature is invalid.",
                    K::InvalidIssuer => "The bearer token was issued by someone else.",
                    _ => "The bearer token is malformed.",
                };
                ApiError::new(ErrorKind::Unauthorized, detail)
            })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
}

impl Principal {
    /// # Errors
    /// 403 when the caller's role is not among `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "This operation needs role {}; the token has role {}.",
                    allowed.join(" or "),
                    self.role
                ),
            ))
        }
    }

    /// The caller of `req`, from its bearer token (see [`bearer_token`]).
    ///
    /// # Errors
    /// 401 problems as for the extractor.
    pub fn from_http(req: &HttpRequest) -> Result<Self, ApiError> {
        let keys = req.app_data::<web::Data<JwtKeys>>().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("JwtKeys are not registered as app data"))
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
        let claims = keys.verify(token)?;
        Ok(Self {
            sub: claims.sub,
            role: claims.role,
        })
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

/// A set of roles an operation admits, as a type, so the check happens while extracting —
/// before the body is read, so a caller without the role gets 403, never a 422 about a body
/// they may not send.
pub trait AllowedRoles {
    const ROLES: &'static [Role];
}

/// Only `admin`.
#[derive(Debug)]
pub struct AdminOnly;

impl AllowedRoles for AdminOnly {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// An authenticated caller whose role is in `R` (401 without a valid token, 403 otherwise).
#[derive(Debug)]
pub struct Authorized<R>(pub Principal, std::marker::PhantomData<R>);

impl<R> Authorized<R> {
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<R: AllowedRoles> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Principal::from_http(req).and_then(|principal| {
            principal.require(R::ROLES)?;
            Ok(Self(principal, std::marker::PhantomData))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&AuthSettings {
            jwt_secret: secret.into(),
            issuer: "tessera".into(),
            token_ttl_secs: 60,
        })
    }

    #[test]
    fn an_issued_token_verifies_with_its_role() {
        let k = keys("s3cret");
        let token = k.issue("alice", Role::Clinician, None).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Clinician);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let token = keys("one").issue("bob", Role::Admin, None).unwrap();
        let err = keys("two").verify(&token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let k = keys("s3cret");
        let now = now_secs();
        let claims = Claims {
            sub: "x".into(),
            role: Role::Admin,
            iss: "tessera".into(),
            iat: now - 120,
            exp: now - 60,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        let err = k.verify(&token).unwrap_err();
        assert!(err.detail().contains("expired"));
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("service".parse::<Role>().unwrap(), Role::Service);
        assert!("root".parse::<Role>().is_err());
    }
}
