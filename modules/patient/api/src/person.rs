//! The parts of a person as they travel in requests and responses (FHIR's shapes): gender,
//! name, phone numbers and email addresses, postal address. Their `Debug` is redacted.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::parse::redacted_debug;

/// Administrative gender, as FHIR defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "male" => Ok(Self::Male),
            "female" => Ok(Self::Female),
            "other" => Ok(Self::Other),
            "unknown" => Ok(Self::Unknown),
            _ => Err("unknown gender".into()),
        }
    }
}

/// A person's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HumanName {
    /// Family name (surname), 1–200 characters.
    #[schema(example = "Example")]
    pub family: String,
    /// Given names, in order; each 1–100 characters, at most 10.
    #[serde(default)]
    #[schema(example = json!(["Alex"]))]
    pub given: Vec<String>,
}

/// How a telecom value is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TelecomSystem {
    Phone,
    Email,
}

/// A phone number or an email address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    /// `phone` or `email`.
    pub system: TelecomSystem,
    /// A phone number (5–15 digits; a leading `+`, spaces, dashes, dots and parentheses
    /// allowed) or an email address.
    #[schema(example = "+1 555 0100")]
    pub value: String,
}

/// A postal address; at least one part must be given.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street lines, each 1–200 characters, at most 5.
    #[serde(default)]
    #[schema(example = json!(["1 Example Street"]))]
    pub line: Vec<String>,
    /// City, 1–100 characters.
    #[schema(example = "Springfield")]
    pub city: Option<String>,
    /// Postal code, 1–20 characters.
    #[schema(example = "12345")]
    pub postal_code: Option<String>,
    /// Country: an ISO 3166 code or a name, 1–100 characters.
    #[schema(example = "US")]
    pub country: Option<String>,
}

redacted_debug!(HumanName, ContactPoint, Address);
