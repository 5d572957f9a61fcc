//! `Json<T>`: the request-body extractor every module uses.
//!
//! - not `application/json` (or `+json`) → 415;
//! - larger than `http.json_limit_bytes` → 413;
//! - not JSON at all → 400;
//! - JSON of the wrong shape → 422 naming every offending field: every missing required
//!   field, every unknown field and every field of the wrong type, not just serde's first; an
//!   array where an object is expected, at any depth; every string, anywhere in the body,
//!   that the database could not store (NUL).

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::{
    PartialSchema,
    openapi::{RefOr, Schema},
};

use super::strict::{Strict, unstorable};
use crate::error::{ApiError, ErrorKind, FieldError};

/// The largest JSON body accepted; registered as app data by the application.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON request body parsed into `T`, with problem+json errors.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> FromRequest for Json<T>
where
    T: DeserializeOwned + PartialSchema + 'static,
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
            parse_body(&body).map(Json)
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

/// Parses a JSON body, reporting malformed JSON as 400 and shape errors as 422.
///
/// # Errors
/// See the module documentation.
pub fn parse_body<T>(body: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + PartialSchema,
{
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadRequest,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    from_value(value).map_err(ApiError::validation)
}

/// Deserializes `value` into `T`; on failure lists every offending field.
///
/// # Errors
/// The offending fields.
pub fn from_value<T>(value: Value) -> Result<T, Vec<FieldError>>
where
    T: DeserializeOwned + PartialSchema,
{
    let unstorable = unstorable(&value);
    // Fast path: well-formed input pays for one deserialization only.
    let first_error = match serde_path_to_error::deserialize::<_, T>(Strict(&value)) {
        Ok(parsed) if unstorable.is_empty() => return Ok(parsed),
        Ok(_) => return Err(unstorable),
        Err(e) => field_error(&e),
    };
    let Value::Object(object) = value else {
        let mut errors = unstorable;
        if !errors.iter().any(|e| e.field == "$") {
            errors.push(FieldError::new(
                "$",
                "the request body must be a JSON object",
            ));
        }
        return Err(errors);
    };
    let mut errors = missing_required::<T>(&object);
    // serde stops at the first problem; feeding it one field at a time finds the rest.
    // A lone field reports "missing field" for the others, which is not its own fault.
    for (key, field_value) in object {
        let mut single = Map::new();
        single.insert(key.clone(), field_value);
        if let Err(e) = serde_path_to_error::deserialize::<_, T>(Strict(&Value::Object(single))) {
            let err = field_error(&e);
            if err.field != "$" || !e.inner().to_string().starts_with("missing field") {
                errors.push(if err.field == "$" {
                    FieldError::new(key, err.message)
                } else {
                    err
                });
            }
        }
    }
    if errors.is_empty() {
        errors.push(first_error);
    }
    // A NUL in a field that is also of the wrong shape is named once, for the NUL.
    errors.retain(|e| !unstorable.iter().any(|u| u.field == e.field));
    errors.splice(0..0, unstorable);
    Err(errors)
}

fn missing_required<T: PartialSchema>(object: &Map<String, Value>) -> Vec<FieldError> {
    let RefOr::T(Schema::Object(schema)) = T::schema() else {
        return Vec::new();
    };
    schema
        .required
        .iter()
        .filter(|name| !object.contains_key(name.as_str()))
        .map(|name| FieldError::new(name.clone(), "is required"))
        .collect()
}

fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let mut message = e.inner().to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        // serde_path_to_error already ends the path with the unknown key.
        let field = if path == "." || path.ends_with(name) {
            path.trim_start_matches('.').to_owned()
        } else {
            format!("{path}.{name}")
        };
        let field = if field.is_empty() {
            name.to_owned()
        } else {
            field
        };
        return FieldError::new(field, "unknown field");
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        && path != "."
    {
        return FieldError::new(format!("{path}.{name}"), "is required");
    }
    let field = if path == "." { "$".to_owned() } else { path };
    FieldError::new(field, without_values(&message))
}

/// serde quotes the offending value (``invalid type: integer `987`, expected a string``). A
/// value may be a card number or a CVC, and error bodies are logged and kept by the
/// idempotency store, so the value is replaced by its kind.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('`', false) => {
                quoted = true;
                out.push_str("(value hidden)");
            }
            ('`', true) => quoted = false,
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    // "invalid type: string "4242…"" uses double quotes for strings.
    match (out.find(": string \""), out.find("\", expected")) {
        (Some(start), Some(end)) if start < end => {
            format!("{}: string{}", &out[..start], &out[end + 1..])
        }
        _ => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use utoipa::ToSchema;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        amount: i64,
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
    }

    #[test]
    fn nested_errors_carry_their_path() {
        let v = json!({"name": "a", "count": 1, "price": {"amount": "ten", "currency": "EUR"}});
        let errors = from_value::<Body>(v).unwrap_err();
        assert_eq!(fields(&errors), ["price.amount"]);
    }

    #[test]
    fn a_non_object_body_is_one_error() {
        let errors = from_value::<Body>(json!([1, 2])).unwrap_err();
        assert_eq!(fields(&errors), ["$"]);
    }

    #[test]
    fn error_messages_do_not_repeat_the_values_sent() {
        #[derive(Debug, Deserialize, ToSchema)]
        #[allow(dead_code)]
        struct Card {
            number: String,
            cvc: u32,
        }
        let v = json!({"number": 4242424242424242_u64, "cvc": "9731"});
        let errors = from_value::<Card>(v).unwrap_err();
        let text = format!("{errors:?}");
        assert!(
            !text.contains("4242424242424242") && !text.contains("9731"),
            "{text}"
        );
        assert!(text.contains("expected"), "{text}");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let err = parse_body::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }
}
