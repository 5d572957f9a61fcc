//! Who a caller is: [`Role`]s, the authenticated [`Principal`] a module's trait is called
//! with, and the role sets operations admit. Tokens are the kernel's business (JWT); it
//! verifies them through an [`Authenticator`]. With feature `actix`, `Principal` is an
//! extractor answering 401 when the token is missing, malformed, tampered with or expired.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorKind};

#[cfg(feature = "actix")]
mod extract;
#[cfg(feature = "actix")]
pub use extract::bearer_token;

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
}

/// Turns a bearer token into the caller it names. The kernel's JWT keys implement it and
/// the application registers them as `web::Data<dyn Authenticator>`, where the `Principal`
/// extractor finds them.
pub trait Authenticator: Send + Sync + 'static {
    /// # Errors
    /// 401 problems: expired, bad signature, wrong issuer or malformed.
    fn authenticate(&self, token: &str) -> Result<Principal, ApiError>;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_only() {
        assert_eq!("service".parse::<Role>().unwrap(), Role::Service);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_role_outside_the_set_is_forbidden() {
        let alice = Principal {
            sub: "alice".into(),
            role: Role::Customer,
        };
        assert!(alice.require(&[Role::Customer, Role::Admin]).is_ok());
        let refused = alice.require(AdminOnly::ROLES).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Forbidden);
    }
}
