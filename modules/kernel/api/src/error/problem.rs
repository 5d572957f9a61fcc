//! The problem document on the wire: RFC 9457 members, a stable `code` and the error's
//! figures, and [`ProblemCode`], through which module errors name both.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One offending input field of a 422 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request (`price.currency`, `items[2].quantity`),
    /// or the query parameter's name.
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document.
///
/// Clients act on `code` and the members it names, never on `title` or `detail` (prose for
/// people, free to change). Every code a response can carry, with its members:
///
/// - `bad_request` (400), `unauthorized` (401), `not_found` (404),
///   `method_not_allowed` (405), `conflict` (409), `precondition_failed` (412),
///   `payload_too_large` (413), `unsupported_media_type` (415), `rate_limited` (429),
///   `internal` (500): no members.
/// - `unavailable` (503): `module` when a module this needs is down (a split deployment's
///   neighbour); `Retry-After` says when to retry, when known.
/// - `validation_failed` (422): `errors`.
/// - `forbidden` (403): `reason` when a module's rule (not the role check) refused.
/// - `idempotency_key_in_flight` (409): a request with the same `Idempotency-Key` is still
///   running; retry later.
/// - `idempotency_key_reused` (422): `errors` (the key was used for a different request).
/// - `product_not_found` (404): `product_id`.
/// - `reservation_not_found` (404): `reservation_id`.
/// - `duplicate_sku` (409): `sku`.
/// - `stock_below_reserved` (409): `requested`, `reserved`.
/// - `has_reservations` (409): `product_id`.
/// - `insufficient_stock` (409): `product_id`, `requested`, `available`.
/// - `reservation_conflict` (409): `reservation_id`.
/// - `reservation_closed` (409): `reservation_id`, `reservation_status`, `action`.
/// - `order_not_found` (404): `order_id`.
/// - `unknown_product` (422): `index`, `product_id`, `errors`.
/// - `illegal_transition` (409): `order_id`, `order_status`, `action`.
/// - `payment_not_found` (404): `payment_id`; `not_payable` (409): `order_id`;
///   `not_refundable` (409): `payment_id`.
/// - `patient_not_found` (404): `patient_id`; `diagnosis_not_found` (404): `diagnosis_id`;
///   `treatment_not_found` (404): `treatment_id`; `duplicate_identifier` (409).
/// - `contract_not_found` (404): `contract_id`; `execution_not_found` (404): `execution_id`;
///   `contract_conflict` (409): `contract_id`; `input_too_large` (413): `size`, `limit`;
///   `evaluation_failed` (422).
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:tessera:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    /// Stable, machine-readable snake_case code of the kind of error (see the schema's
    /// description for every code and the members it carries). Tessera always sends it;
    /// parsing defaults it to empty for a body that was not a problem document.
    #[serde(default)]
    #[schema(required = true)]
    pub code: String,
    /// For validation failures: every offending field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id (also in the `x-request-id` header), for server errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The figures of the error its `code` names (`product_id`, `requested`, `available`,
    /// `order_id`, `reservation_id`, `order_status`, `reservation_status`, `action`, `sku`,
    /// `reserved`, `index`, `reason`, `payment_id`, `patient_id`, `diagnosis_id`,
    /// `treatment_id`, `contract_id`, `execution_id`, `size`, `limit`, `module`), never
    /// named like a standard member.
    #[serde(flatten)]
    pub members: Map<String, Value>,
}

/// The members of a `json!({..})` object (nothing for any other value), for
/// [`ProblemCode::members`].
pub fn members(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(members) => members,
        _ => Map::new(),
    }
}

/// How a module error becomes data on the wire: its stable code and its figures. One match
/// per error enum, next to the enum; [`ApiError::from_coded`](super::ApiError::from_coded) puts both into the problem.
pub trait ProblemCode {
    /// The snake_case code clients match on.
    fn code(&self) -> &'static str;

    /// The variant's figures, as members of the problem document.
    fn members(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// The inverse of [`tagged_members`]: a problem's code and members read back as a
/// `#[serde(tag = "code")]` problem enum; `None` for a code it has no variant for (or figures
/// that do not fit).
pub fn from_tagged<T: serde::de::DeserializeOwned>(problem: &Problem) -> Option<T> {
    let mut tagged = problem.members.clone();
    tagged.insert("code".into(), Value::String(problem.code.clone()));
    serde_json::from_value(Value::Object(tagged)).ok()
}

/// The members of a `#[serde(tag = "code")]` problem enum's variant: its fields, without the
/// tag (the problem carries the code on its own). For [`ProblemCode::members`].
pub fn tagged_members<T: serde::Serialize>(problem: &T) -> Map<String, Value> {
    match serde_json::to_value(problem) {
        Ok(Value::Object(mut members)) => {
            members.remove("code");
            members
        }
        _ => Map::new(),
    }
}
