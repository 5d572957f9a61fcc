//! `Json<T>`: the request-body extractor every module uses.
//!
//! - not `application/json` (or `+json`) → 415;
//! - larger than `http.json_limit_bytes` → 413;
//! - not JSON at all → 400;
//! - JSON of the wrong shape → 422 naming every offending field (see [`super::report`]):
//!   every missing required field, every unknown field, every field of the wrong type or with
//!   a value its type does not allow, at any depth, in words taken from the type's schema; an
//!   array where an object is expected; every string that the database could not store
//!   (NUL); arrays and objects nested more than [`MAX_DEPTH`] levels deep. The handler passes
//!   its module's rules to [`Json::parse`], so the same 422 also names the fields that were of
//!   the right type but break a rule.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    report::{Checked, Report, check},
    schema::Schemas,
    strict::{Strict, unstorable},
};
use crate::error::{ApiError, ErrorKind, FieldError};

/// The largest JSON body accepted; registered as app data by the application.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON request body read as `T` (see [`Checked`]). Extraction fails for a body that is
/// not JSON (400), too large (413) or of another media type (415).
pub type Json<T> = Checked<T, Body>;

/// The request body, as the part a [`Checked`] value is read from.
#[derive(Debug)]
pub enum Body {}

impl<T> FromRequest for Json<T>
where
    T: DeserializeOwned + ToSchema + 'static,
{
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<JsonLimit>>()
            .map_or(1024 * 1024, |l| l.0);
        let content_type_ok = is_json_content_type(req);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::new(
                    ErrorKind::UnsupportedMediaType,
                    "The request body must be JSON (Content-Type: application/json).",
                ));
            }
            let too_large = || {
                ApiError::new(
                    ErrorKind::PayloadTooLarge,
                    format!("The request body is larger than {limit} bytes."),
                )
            };
            if declared_len.is_some_and(|len| len > limit) {
                return Err(too_large());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::new(ErrorKind::BadRequest, format!("cannot read the body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            read(&body)
        })
    }
}

fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// How deep arrays and objects may nest in a body: serde_json's own limit, which every later
/// reading of stored JSON (a contract's state, an event) shares, so whatever is accepted can
/// be read back.
pub const MAX_DEPTH: usize = 127;

/// Parses a JSON body, reporting malformed JSON as 400 and shape errors as 422.
///
/// # Errors
/// See the module documentation.
pub fn parse_body<T>(body: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + ToSchema,
{
    read::<T>(body)?.into_inner()
}

/// Reads a body: 400 unless it is JSON; otherwise the parsed value and every offending field.
fn read<T>(body: &[u8]) -> Result<Json<T>, ApiError>
where
    T: DeserializeOwned + ToSchema,
{
    if too_deep(body) {
        return Ok(Json::new(Report::with_errors(vec![FieldError::new(
            "$",
            format!(
                "nests arrays and objects more than {MAX_DEPTH} levels deep; {MAX_DEPTH} is \
                 the most accepted"
            ),
        )])));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadRequest,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let rounds = (16 * 1024 * 1024) / body.len().max(1);
    Ok(Json::new(checked(value, rounds)))
}

/// Deserializes `value` into `T`; on failure lists every offending field.
///
/// # Errors
/// The offending fields.
pub fn from_value<T>(value: Value) -> Result<T, Vec<FieldError>>
where
    T: DeserializeOwned + ToSchema,
{
    checked(value, usize::MAX).finish(Ok)
}

fn checked<T>(mut value: Value, rounds: usize) -> Report<T>
where
    T: DeserializeOwned + ToSchema,
{
    let unstorable = unstorable(&value);
    if unstorable.iter().any(|e| e.field == "$") {
        return Report::with_errors(unstorable);
    }
    let mut report = check(
        &mut value,
        Schemas::of::<T>,
        "field",
        rounds,
        |value: &Value| serde_path_to_error::deserialize::<_, T>(Strict(value)),
    );
    // A NUL in a field that is also of the wrong shape is named once, for the NUL.
    report
        .errors
        .retain(|e| !unstorable.iter().any(|u| u.field == e.field));
    report
        .covered
        .extend(unstorable.iter().map(|e| e.field.clone()));
    report.errors.splice(0..0, unstorable);
    report
}

/// Whether `body` nests deeper than [`MAX_DEPTH`] (read without parsing: brackets outside
/// strings).
fn too_deep(body: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0_usize, false, false);
    for &b in body {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        amount: i64,
        #[schema(example = "EUR")]
        currency: String,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
        price: Inner,
        note: Option<String>,
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        let mut f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        f.sort_unstable();
        f
    }

    fn message<'a>(errors: &'a [FieldError], field: &str) -> &'a str {
        &errors.iter().find(|e| e.field == field).unwrap().message
    }

    #[test]
    fn valid_input_parses() {
        let v = json!({"name": "a", "count": 1, "price": {"amount": 1, "currency": "EUR"}});
        assert!(from_value::<Body>(v).is_ok());
    }

    #[test]
    fn every_offending_field_is_named() {
        let v = json!({"name": 5, "count": -1, "colour": "red", "note": 3});
        let errors = from_value::<Body>(v).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["colour", "count", "name", "note", "price"]
        );
        assert_eq!(message(&errors, "price"), "is required");
        assert_eq!(
            message(&errors, "colour"),
            "unknown field; the fields are: count, name, note, price"
        );
        assert_eq!(message(&errors, "name"), "must be a string");
        assert_eq!(
            message(&errors, "count"),
            "must be a whole number between 0 and 4294967295"
        );
    }

    #[test]
    fn every_nested_error_carries_its_path() {
        let v = json!({"name": "a", "count": "1", "price": {"amount": "ten", "currency": 3}});
        let errors = from_value::<Body>(v).unwrap_err();
        assert_eq!(fields(&errors), ["count", "price.amount", "price.currency"]);
        assert_eq!(
            message(&errors, "price.amount"),
            "must be a whole number between -9223372036854775808 and 9223372036854775807"
        );
        let missing = from_value::<Body>(json!({"name": "a", "count": 1, "price": {}}));
        assert_eq!(
            fields(&missing.unwrap_err()),
            ["price.amount", "price.currency"]
        );
    }

    #[test]
    fn the_rules_judge_the_fields_that_were_right() {
        let v = json!({"name": "", "count": "x", "price": {"amount": -5, "currency": "EUR"}});
        let rules = |body: Body| {
            let mut errors = Vec::new();
            if body.name.is_empty() {
                errors.push(FieldError::new("name", "must not be empty"));
            }
            if body.price.amount < 0 {
                errors.push(FieldError::new("price.amount", "must not be negative"));
            }
            // Said of the stand-in for `count`, which the client did not send: dropped.
            errors.push(FieldError::new("count", "must be at least 1"));
            if errors.is_empty() {
                Ok(body)
            } else {
                Err(errors)
            }
        };
        let err = checked::<Body>(v, 100).finish(rules).unwrap_err();
        assert_eq!(fields(&err), ["count", "name", "price.amount"]);
        assert!(message(&err, "count").starts_with("must be a whole number"));
    }

    #[test]
    fn error_messages_do_not_repeat_the_values_sent_nor_speak_rust() {
        #[derive(Debug, Deserialize, ToSchema)]
        #[allow(dead_code)]
        struct Card {
            number: String,
            cvc: String,
            exp_month: u32,
        }
        let v = json!({"number": 4242424242424242_u64, "cvc": 9731, "exp_month": 99999999999999999999.0});
        let errors = from_value::<Card>(v).unwrap_err();
        assert_eq!(fields(&errors), ["cvc", "exp_month", "number"]);
        let text = format!("{errors:?}");
        for word in [
            "4242424242424242",
            "9731",
            "expected",
            "invalid type",
            "u32",
            "hidden",
        ] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn a_non_object_body_is_one_error() {
        let errors = from_value::<Body>(json!([1, 2])).unwrap_err();
        assert_eq!(fields(&errors), ["$"]);
        assert_eq!(errors[0].message, "the request body must be a JSON object");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let err = parse_body::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn nesting_is_accepted_up_to_the_limit_and_named_past_it() {
        #[derive(Debug, Deserialize, ToSchema)]
        #[allow(dead_code)]
        struct Free {
            #[schema(value_type = Object)]
            input: Value,
        }
        let nested = |depth: usize| {
            // The body's own object is the first level.
            format!(
                "{{\"input\": {}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(parse_body::<Free>(nested(MAX_DEPTH).as_bytes()).is_ok());
        let err = parse_body::<Free>(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(err.errors()[0].field, "$");
        assert!(err.errors()[0].message.contains("127 levels"));
        // Brackets inside strings are text.
        let text = format!("{{\"input\": \"{}\\\"[\"}}", "[".repeat(500));
        assert!(parse_body::<Free>(text.as_bytes()).is_ok());
    }
}
