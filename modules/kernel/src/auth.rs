//! JWT bearer authentication (HS256 with the configured secret) and roles.
//!
//! Handlers take a [`Principal`]; it answers 401 when the token is missing, malformed,
//! tampered with or expired, and [`Principal::require`] answers 403 for a wrong role. The
//! caller types are [`kernel_api::auth`]'s; the tokens are [`JwtKeys`], which the
//! application registers as the [`Authenticator`] ([`JwtKeys::authenticator`]).

use std::fmt;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use kernel_api::auth::{AdminOnly, AllowedRoles, Authenticator, Principal, Role, bearer_token};
use serde::{Deserialize, Serialize};

use crate::{
    config::AuthSettings,
    error::{ApiError, ErrorKind},
};

/// The claims Tessera signs and reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
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
    /// A blank `sub` (the server refuses such tokens), or a failed signing, which HS256 with
    /// a non-empty secret does not.
    pub fn issue(&self, sub: &str, role: Role, ttl_secs: Option<u64>) -> anyhow::Result<String> {
        if sub.trim().is_empty() {
            anyhow::bail!("a token needs a subject: the user or service name must not be blank");
        }
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

    /// These keys as the app data the [`Principal`] extractor verifies tokens with:
    /// `App::new().app_data(keys.authenticator())`.
    pub fn authenticator(self) -> web::Data<dyn Authenticator> {
        web::Data::from(std::sync::Arc::new(self) as std::sync::Arc<dyn Authenticator>)
    }

    /// # Errors
    /// 401 problems: expired, bad signature, wrong issuer, malformed, or naming no subject
    /// (a blank `sub` would make every such caller one anonymous owner of orders and keys).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
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
            })?;
        if claims.sub.trim().is_empty() {
            return Err(ApiError::new(
                ErrorKind::Unauthorized,
                "The bearer token names no subject.",
            ));
        }
        Ok(claims)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Authenticator for JwtKeys {
    fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.verify(token)?;
        Ok(Principal {
            sub: claims.sub,
            role: claims.role,
        })
    }
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
    fn a_blank_subject_is_neither_issued_nor_accepted() {
        let k = keys("s3cret");
        let now = now_secs();
        for sub in ["", " ", "\t\n"] {
            assert!(k.issue(sub, Role::Admin, None).is_err(), "{sub:?} issued");
            let claims = Claims {
                sub: sub.into(),
                role: Role::Admin,
                iss: "tessera".into(),
                iat: now,
                exp: now + 60,
            };
            let token =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
            let err = k.verify(&token).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{sub:?}");
            assert!(err.detail().contains("no subject"), "{sub:?}");
        }
    }

    #[test]
    fn the_extractor_verifies_the_bearer_token_with_the_registered_keys() {
        use actix_web::{http::header, test::TestRequest};
        let k = keys("s3cret");
        let token = k.issue("alice", Role::Clinician, None).unwrap();
        let request = |value: Option<String>| {
            let mut req = TestRequest::default().app_data(keys("s3cret").authenticator());
            if let Some(value) = value {
                req = req.insert_header((header::AUTHORIZATION, value));
            }
            req.to_http_request()
        };
        let alice = Principal::from_http(&request(Some(format!("bearer {token}")))).unwrap();
        assert_eq!((alice.sub.as_str(), alice.role), ("alice", Role::Clinician));
        for missing_or_bad in [None, Some("Basic abc".into()), Some("Bearer x.y.z".into())] {
            let err = Principal::from_http(&request(missing_or_bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized);
        }
    }
}
