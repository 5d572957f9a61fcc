//! `Query<T>`: the query-string extractor every module uses. Like [`super::Json`], it names
//! every offending parameter at once — of the wrong type (`?limit=abc`: "must be a whole
//! number between 1 and 100"), not one of the allowed values, unknown, or holding a NUL the
//! database could not store — in words taken from the parameters' schema, together with what
//! the module's rules say about the others ([`Query::parse`]).

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::IntoParams;

use super::{
    report::{Checked, Document, Report, check},
    schema::{Schemas, Step},
    strict,
};
use crate::error::{ApiError, FieldError};

/// The query string read as `T`, checked parameter by parameter (see [`Checked`]).
pub type Query<T> = Checked<T, QueryString>;

/// The query string, as the part a [`Checked`] value is read from.
#[derive(Debug)]
pub enum QueryString {}

impl<T: DeserializeOwned + IntoParams + 'static> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self::new(read(req.query_string()))))
    }
}

/// Parses a query string.
///
/// # Errors
/// 422 naming every offending parameter.
pub fn parse_query<T: DeserializeOwned + IntoParams>(query: &str) -> Result<T, ApiError> {
    Query::new(read(query)).into_inner()
}

fn read<T: DeserializeOwned + IntoParams>(query: &str) -> Report<T> {
    let unstorable: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| FieldError::new(strict::printable(&name), strict::NUL_MESSAGE))
        .collect();
    if !unstorable.is_empty() {
        return Report::with_errors(unstorable);
    }
    let mut pairs = Pairs(
        form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect(),
    );
    check(
        &mut pairs,
        Schemas::of_query::<T>,
        "query parameter",
        100,
        |pairs: &Pairs| {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs.0)
                .finish();
            let de =
                serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
            serde_path_to_error::deserialize::<_, T>(de)
        },
    )
}

/// The decoded name–value pairs of a query string.
struct Pairs(Vec<(String, String)>);

impl Document for Pairs {
    fn remove(&mut self, path: &[Step]) {
        if let [Step::Key(name), ..] = path {
            self.0.retain(|(n, _)| n != name);
        }
    }

    fn set(&mut self, path: &[Step], value: Value) {
        if let [Step::Key(name)] = path {
            self.0.retain(|(n, _)| n != name);
            let value = match value {
                Value::String(s) => s,
                Value::Null => return,
                other => other.to_string(),
            };
            self.0.push((name.clone(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::error::ErrorKind;

    #[derive(Debug, Deserialize, IntoParams)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
    #[allow(dead_code)]
    struct Q {
        /// Page size.
        #[param(minimum = 1, maximum = 100)]
        limit: Option<u32>,
        q: Option<String>,
        status: Option<Status>,
    }

    #[derive(Debug, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    enum Status {
        Open,
        Closed,
    }

    fn errors(query: &str) -> Vec<FieldError> {
        parse_query::<Q>(query).unwrap_err().errors().to_vec()
    }

    #[test]
    fn query_errors_name_the_parameter_in_words() {
        assert_eq!(
            errors("limit=ten"),
            [FieldError::new(
                "limit",
                "must be a whole number between 1 and 100"
            )]
        );
        let unknown = errors("lmit=1");
        assert_eq!(unknown[0].field, "lmit");
        assert_eq!(
            unknown[0].message,
            "unknown query parameter; the query parameters are: limit, q, status"
        );
        assert!(parse_query::<Q>("limit=5&q=a%20b&status=open").is_ok());
    }

    #[test]
    fn every_offending_parameter_is_named_with_the_allowed_values() {
        let found = errors("limit=abc&status=weird&colour=red");
        let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "status", "colour"]);
        assert_eq!(found[1].message, "must be one of: open, closed");
        // The parameters that were right reach the module's rules.
        let ruled = Query::new(read::<Q>("limit=abc&q=x"))
            .parse(|q| match q.q.as_deref() {
                Some("x") => Err(vec![FieldError::new("q", "must not be x")]),
                _ => Ok(()),
            })
            .unwrap_err();
        assert_eq!(ruled.errors().len(), 2);
        assert_eq!(ruled.errors()[1].field, "q");
    }

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        let err = parse_query::<Q>("limit=5&q=a%00b").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(err.errors()[0].field, "q");
        let err = parse_query::<Q>("q%00=1").unwrap_err();
        assert_eq!(err.errors()[0].field, "q\\u0000");
    }
}
