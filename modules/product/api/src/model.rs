//! Request bodies (as clients send them), the domain values they parse into, and responses.

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};
use kernel::{
    error::FieldError,
    http::{cursor, page_limit},
    money::{Currency, Money},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{ProductId, ReservationId};

/// Largest stock or quantity accepted, far beyond any real inventory, so sums cannot overflow.
pub const MAX_UNITS: i64 = 1_000_000_000_000;

// ---------------------------------------------------------------------------------------
// Domain values: once built, they are valid.

/// A stock-keeping unit: 1–64 letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sku(String);

impl Sku {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err("may only contain letters, digits, '-', '_' and '.'".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–200 characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductName(String);

impl ProductName {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text up to 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description(String);

impl Description {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > 2000 {
            return Err("must be at most 2000 characters".into());
        }
        Ok(Self(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_price(price: Money) -> Result<Money, String> {
    if price.amount < 0 {
        Err("must not be negative".into())
    } else if price.amount > MAX_UNITS * 1000 {
        Err("is too large".into())
    } else {
        Ok(price)
    }
}

fn parse_units(units: i64) -> Result<i64, String> {
    if units < 0 {
        Err("must not be negative".into())
    } else if units > MAX_UNITS {
        Err(format!("must be at most {MAX_UNITS}"))
    } else {
        Ok(units)
    }
}

/// Collects field errors while parsing several fields, so one response names them all.
#[derive(Debug, Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// A valid new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub stock: i64,
}

/// The fields a PUT or PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    pub sku: Option<Sku>,
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price: Option<Money>,
    pub stock: Option<i64>,
}

impl From<NewProduct> for ProductChanges {
    fn from(p: NewProduct) -> Self {
        Self {
            sku: Some(p.sku),
            name: Some(p.name),
            description: Some(p.description),
            price: Some(p.price),
            stock: Some(p.stock),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies.

/// A product as written by `POST /products` and `PUT /products/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Stock-keeping unit, unique: 1–64 letters, digits, `-`, `_` or `.`.
    #[schema(example = "TEA-EARL-GREY-250")]
    pub sku: String,
    /// Display name, 1–200 characters.
    #[schema(example = "Earl Grey, 250 g")]
    pub name: String,
    /// Free text, up to 2000 characters.
    #[serde(default)]
    #[schema(example = "Black tea with bergamot.")]
    pub description: String,
    /// Unit price; the amount must not be negative.
    pub price: Money,
    /// Units on hand, 0 or more.
    #[schema(example = 100, minimum = 0)]
    pub stock: i64,
}

impl TryFrom<ProductInput> for NewProduct {
    type Error = Vec<FieldError>;

    fn try_from(input: ProductInput) -> Result<Self, Self::Error> {
        let mut f = Fields::default();
        let sku = f.check("sku", Sku::parse(&input.sku));
        let name = f.check("name", ProductName::parse(&input.name));
        let description = f.check("description", Description::parse(&input.description));
        let price = f.check("price.amount", parse_price(input.price));
        let stock = f.check("stock", parse_units(input.stock));
        let value = (|| {
            Some(NewProduct {
                sku: sku?,
                name: name?,
                description: description?,
                price: price?,
                stock: stock?,
            })
        })();
        f.finish(value)
    }
}

/// A partial update for `PATCH /products/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// New SKU.
    pub sku: Option<String>,
    /// New display name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New unit price.
    pub price: Option<Money>,
    /// New units on hand; must not fall below what is reserved.
    #[schema(minimum = 0)]
    pub stock: Option<i64>,
}

impl TryFrom<ProductPatch> for ProductChanges {
    type Error = Vec<FieldError>;

    fn try_from(patch: ProductPatch) -> Result<Self, Self::Error> {
        let mut f = Fields::default();
        let changes = ProductChanges {
            sku: patch.sku.and_then(|s| f.check("sku", Sku::parse(&s))),
            name: patch
                .name
                .and_then(|s| f.check("name", ProductName::parse(&s))),
            description: patch
                .description
                .and_then(|s| f.check("description", Description::parse(&s))),
            price: patch
                .price
                .and_then(|p| f.check("price.amount", parse_price(p))),
            stock: patch.stock.and_then(|s| f.check("stock", parse_units(s))),
        };
        f.finish(Some(changes))
    }
}

// ---------------------------------------------------------------------------------------
// Responses.

/// A product with its inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product id (UUID v7).
    pub id: ProductId,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Unit price.
    pub price: Money,
    /// Units on hand.
    pub stock: i64,
    /// Units held for orders that are not yet paid or shipped.
    pub reserved: i64,
    /// Units that can still be ordered: `stock - reserved`.
    pub available: i64,
    /// Revision, incremented by every change; the ETag is this number in quotes.
    pub version: i64,
    /// When the product was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When the product last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// One page of products.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The products on this page.
    pub items: Vec<Product>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
    /// How many products match the filter, over all pages.
    pub total: u64,
}

// ---------------------------------------------------------------------------------------
// Listing.

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
            limit: kernel::http::DEFAULT_PAGE_SIZE,
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

// ---------------------------------------------------------------------------------------
// Reservations.

/// One line of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationLine {
    /// The product to hold.
    pub product_id: ProductId,
    /// Units to hold, at least 1.
    pub quantity: i64,
}

/// Body of `POST /reservations`: hold every line or none, for reservation `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationInput {
    /// The reservation's id (order uses the order id). Reserving again with the same id and
    /// lines returns the existing reservation.
    pub id: ReservationId,
    /// What to hold; a product listed twice is one line with the quantities summed.
    pub lines: Vec<ReservationLine>,
}

/// Valid reservation lines: not empty, positive quantities, one line per product (repeated
/// products are summed), ordered by product id so concurrent reservations lock rows in the
/// same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationLines(Vec<ReservationLine>);

impl ReservationLines {
    /// # Errors
    /// Field errors for `lines` or `lines[i].quantity`.
    pub fn parse(lines: Vec<ReservationLine>) -> Result<Self, Vec<FieldError>> {
        if lines.is_empty() {
            return Err(vec![FieldError::new("lines", "must not be empty")]);
        }
        let mut errors = Vec::new();
        let mut merged: BTreeMap<ProductId, i64> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if !(1..=MAX_UNITS).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_UNITS}"),
                ));
                continue;
            }
            let total = merged.entry(line.product_id).or_default();
            *total = total.saturating_add(line.quantity).min(MAX_UNITS);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self(
            merged
                .into_iter()
                .map(|(product_id, quantity)| ReservationLine {
                    product_id,
                    quantity,
                })
                .collect(),
        ))
    }

    pub fn lines(&self) -> &[ReservationLine] {
        &self.0
    }
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Stock is held.
    Active,
    /// Stock was returned to `available`.
    Released,
    /// Stock left the warehouse.
    Committed,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Committed => "committed",
        }
    }

    /// # Errors
    /// An unknown status name (a corrupt row).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "released" => Ok(Self::Released),
            "committed" => Ok(Self::Committed),
            other => Err(format!("unknown reservation status {other:?}")),
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stock held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// Reservation id (the order id for order's reservations).
    pub id: ReservationId,
    /// Where the reservation stands.
    pub status: ReservationStatus,
    /// What is held, one line per product.
    pub lines: Vec<ReservationLine>,
    /// When it was made (UTC).
    pub created_at: DateTime<Utc>,
    /// When its status last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").unwrap())
    }

    fn input() -> ProductInput {
        ProductInput {
            sku: "SKU-1".into(),
            name: "Tea".into(),
            description: String::new(),
            price: eur(100),
            stock: 5,
        }
    }

    #[test]
    fn valid_input_becomes_a_new_product() {
        let p = NewProduct::try_from(input()).unwrap();
        assert_eq!(p.sku.as_str(), "SKU-1");
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let bad = ProductInput {
            sku: "no spaces".into(),
            name: "  ".into(),
            price: eur(-1),
            stock: -3,
            ..input()
        };
        let errors = NewProduct::try_from(bad).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["sku", "name", "price.amount", "stock"]);
    }

    #[test]
    fn reservation_lines_merge_repeats_and_reject_non_positive_quantities() {
        let a = ProductId::new();
        let b = ProductId::new();
        let lines = ReservationLines::parse(vec![
            ReservationLine {
                product_id: b,
                quantity: 1,
            },
            ReservationLine {
                product_id: a,
                quantity: 2,
            },
            ReservationLine {
                product_id: b,
                quantity: 3,
            },
        ])
        .unwrap();
        assert_eq!(
            lines.lines(),
            [
                ReservationLine {
                    product_id: a,
                    quantity: 2
                },
                ReservationLine {
                    product_id: b,
                    quantity: 4
                }
            ]
        );
        assert!(ReservationLines::parse(vec![]).is_err());
        let zero = ReservationLines::parse(vec![ReservationLine {
            product_id: a,
            quantity: 0,
        }]);
        assert_eq!(zero.unwrap_err()[0].field, "lines[0].quantity");
    }

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
