//! Listing products: the query parameters, their checked form with its sort order, and the
//! cursor that resumes a listing after its last product.

use chrono::{DateTime, Utc};
use kernel_api::{
    error::FieldError,
    money::Currency,
    page::{cursor, page_limit},
};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::{Product, ProductId, values::Fields};

/// Query parameters of `GET /products`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListParams {
    /// Case-insensitive substring of the name or SKU.
    pub q: Option<String>,
    /// Lowest price, in minor units (inclusive).
    pub min_price: Option<i64>,
    /// Highest price, in minor units (inclusive).
    pub max_price: Option<i64>,
    /// Only prices in this ISO 4217 currency.
    pub currency: Option<String>,
    /// `name`, `price` or `created_at` (default), with a leading `-` for descending.
    pub sort: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// What the list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    Name,
    Price,
    CreatedAt,
}

/// Sort key and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    fn parse(raw: &str) -> Result<Self, String> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let key = match name {
            "name" => SortKey::Name,
            "price" => SortKey::Price,
            "created_at" => SortKey::CreatedAt,
            _ => {
                return Err(
                    "must be name, price or created_at, optionally prefixed with '-'".into(),
                );
            }
        };
        Ok(Self { key, descending })
    }
}

/// Where the previous page ended: the last item's sort value and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    Name(String, ProductId),
    Price(i64, ProductId),
    CreatedAt(DateTime<Utc>, ProductId),
}

impl After {
    /// The position just after `product` in a list sorted by `key`.
    pub fn of(product: &Product, key: SortKey) -> Self {
        match key {
            SortKey::Name => Self::Name(product.name.clone(), product.id),
            SortKey::Price => Self::Price(product.price.amount, product.id),
            SortKey::CreatedAt => Self::CreatedAt(product.created_at, product.id),
        }
    }

    fn key(&self) -> SortKey {
        match self {
            Self::Name(..) => SortKey::Name,
            Self::Price(..) => SortKey::Price,
            Self::CreatedAt(..) => SortKey::CreatedAt,
        }
    }

    pub fn encode(&self) -> String {
        cursor::encode(self)
    }
}

/// A valid listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductQuery {
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub currency: Option<Currency>,
    pub sort: Sort,
    pub limit: u32,
    pub after: Option<After>,
}

impl Default for ProductQuery {
    fn default() -> Self {
        Self {
            q: None,
            min_price: None,
            max_price: None,
            currency: None,
            sort: Sort {
                key: SortKey::CreatedAt,
                descending: false,
            },
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

impl TryFrom<ProductListParams> for ProductQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: ProductListParams) -> Result<Self, Self::Error> {
        let mut f = Fields::default();
        let sort = match p.sort.as_deref() {
            None => Some(ProductQuery::default().sort),
            Some(raw) => f.check("sort", Sort::parse(raw)),
        };
        let limit = f.check("limit", page_limit(p.limit).map_err(|e| e.message));
        let currency = p
            .currency
            .and_then(|c| f.check("currency", Currency::parse(&c)));
        let min_price = p
            .min_price
            .and_then(|v| f.check("min_price", parse_price_bound(v)));
        let max_price = p
            .max_price
            .and_then(|v| f.check("max_price", parse_price_bound(v)));
        if let (Some(lo), Some(hi)) = (min_price, max_price)
            && lo > hi
        {
            f.0.push(FieldError::new("min_price", "must not exceed max_price"));
        }
        let q = p.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            f.0.push(FieldError::new("q", "must be at most 200 characters"));
        }
        let after = p.cursor.and_then(|c| {
            let decoded = cursor::decode::<After>(&c).map_err(|e| e.message);
            f.check("cursor", decoded)
        });
        if let (Some(after), Some(sort)) = (&after, sort)
            && after.key() != sort.key
        {
            f.0.push(FieldError::new(
                "cursor",
                "belongs to a listing with another sort order",
            ));
        }
        let value = (|| {
            Some(ProductQuery {
                q,
                min_price,
                max_price,
                currency,
                sort: sort?,
                limit: limit?,
                after,
            })
        })();
        f.finish(value)
    }
}

fn parse_price_bound(v: i64) -> Result<i64, String> {
    if v < 0 {
        Err("must not be negative".into())
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_params_are_checked_together() {
        let params = ProductListParams {
            sort: Some("colour".into()),
            limit: Some(500),
            min_price: Some(10),
            max_price: Some(5),
            cursor: Some("garbage".into()),
            ..Default::default()
        };
        let errors = ProductQuery::try_from(params).unwrap_err();
        let mut fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["cursor", "limit", "min_price", "sort"]);
    }

    #[test]
    fn a_cursor_only_fits_its_own_sort_order() {
        let after = After::Price(10, ProductId::new()).encode();
        let params = ProductListParams {
            sort: Some("-name".into()),
            cursor: Some(after),
            ..Default::default()
        };
        let errors = ProductQuery::try_from(params).unwrap_err();
        assert_eq!(errors[0].field, "cursor");
    }
}
