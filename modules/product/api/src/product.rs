//! A product: the bodies clients write (`ProductInput`, `ProductPatch`), the valid values
//! they parse into (`NewProduct`, `ProductChanges`), and the product as it is read.

use chrono::{DateTime, Utc};
use kernel_api::{error::FieldError, money::Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    ProductId,
    values::{Description, Fields, ProductName, Sku, parse_price, parse_units},
};

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

/// A product as written by `POST /products` and `PUT /products/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Stock-keeping unit, unique: 1–64 letters (of any script), digits, `-`, `_` or `.`.
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

#[cfg(test)]
mod tests {
    use kernel_api::money::Currency;

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
}
