//! Pagination: a checked `limit` and opaque cursors, as every listing takes them.

use serde::de::DeserializeOwned;

use crate::error::FieldError;

/// Requested page size, clamped to the documented bounds.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks a `limit` parameter: absent → 20; outside 1..=100 → an error for field `limit`.
///
/// # Errors
/// A field error for `limit`.
pub fn page_limit(limit: Option<u32>) -> Result<u32, FieldError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// A checked `limit` and `cursor` pair: the page size and the decoded position the page starts
/// after. Both are checked, so one 422 names both when both are wrong.
///
/// # Errors
/// Field errors for `limit` and/or `cursor`.
pub fn page_params<C: DeserializeOwned>(
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<(u32, Option<C>), Vec<FieldError>> {
    let limit = page_limit(limit);
    let position = cursor.map(cursor::decode::<C>).transpose();
    match (limit, position) {
        (Ok(limit), Ok(position)) => Ok((limit, position)),
        (limit, position) => Err(limit.err().into_iter().chain(position.err()).collect()),
    }
}

/// Opaque cursors: URL-safe base64 of a small JSON value (the position after the last item).
pub mod cursor {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use serde::{Serialize, de::DeserializeOwned};

    use crate::error::FieldError;

    pub fn encode<T: Serialize>(position: &T) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
    }

    /// # Errors
    /// A field error for `cursor` when it was not produced by [`encode`] for this listing.
    pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, FieldError> {
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| FieldError::new("cursor", "is not a cursor returned by this listing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_params_report_both_fields() {
        assert_eq!(page_params::<i64>(None, None).unwrap(), (20, None));
        let c = cursor::encode(&7_i64);
        assert_eq!(page_params::<i64>(Some(5), Some(&c)).unwrap(), (5, Some(7)));
        let errors = page_params::<i64>(Some(0), Some("%%")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "cursor"]);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = cursor::encode(&("name", 3));
        assert_eq!(
            cursor::decode::<(String, i32)>(&c).unwrap(),
            ("name".into(), 3)
        );
        assert!(cursor::decode::<(String, i32)>("%%%").is_err());
    }
}
