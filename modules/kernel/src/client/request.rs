//! One call as the clients build it ([`Request`]: method, path, query, headers, JSON body,
//! `Idempotency-Key`, whose token) and a successful answer ([`Response`]).

use anyhow::Context;
use serde::{Serialize, de::DeserializeOwned};

use super::RemoteError;
use crate::auth::Principal;

/// The methods the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub(super) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Whose token a call carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// The calling module's `service` token (the default).
    #[default]
    Service,
    /// A one-minute token with this principal's subject and role, for operations whose
    /// rules depend on the end user (a customer placing an order). The neighbour's own
    /// access rules then apply exactly as if the user had called it.
    OnBehalfOf(Principal),
}

/// One call to the neighbour, built with [`Remote::request`].
#[derive(Debug, Clone)]
pub struct Request {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) idempotency_key: Option<String>,
    pub(super) auth: Auth,
}

impl Request {
    /// A query parameter (appended; URL-encoded).
    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    /// A header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON body.
    ///
    /// # Errors
    /// When `body` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, RemoteError> {
        let bytes = serde_json::to_vec(body)
            .context("cannot serialize the request body")
            .map_err(RemoteError::Unexpected)?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Sends `Idempotency-Key: key`, which also makes a `POST` safe to retry.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Whether the call may be retried: `GET`, or a call with an `Idempotency-Key`.
    pub fn is_idempotent(&self) -> bool {
        self.method == Method::Get || self.idempotency_key.is_some()
    }
}

/// A successful (2xx) response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Errors
    /// [`RemoteError::Unexpected`] when it is not a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RemoteError> {
        serde_json::from_slice(&self.body)
            .context("the response body is not what the API documents")
            .map_err(RemoteError::Unexpected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        auth::JwtKeys,
        client::{Remote, RemoteConfig},
    };

    #[test]
    fn a_request_is_idempotent_when_it_is_a_get_or_carries_a_key() {
        let keys = JwtKeys::new(&crate::config::AuthSettings {
            jwt_secret: "x".into(),
            issuer: "tessera".into(),
            token_ttl_secs: 60,
        });
        let r = Remote::new("p", "o", keys, &RemoteConfig::new("http://127.0.0.1:1")).unwrap();
        assert!(r.request(Method::Get, "/x").is_idempotent());
        assert!(!r.request(Method::Post, "/x").is_idempotent());
        assert!(
            r.request(Method::Post, "/x")
                .idempotency_key("k")
                .is_idempotent()
        );
        assert!(!r.request(Method::Put, "/x").is_idempotent());
    }
}
