//! Pure rules of the product module: what a change may do to a product.

use chrono::NaiveDateTime;
use product_api::{ProductChanges, ProductError};

use crate::store::ProductRow;

/// The product after `changes`, with its version bumped; `None` when they change nothing
/// (absent fields, or values equal to the current ones), so the version and ETag every other
/// client holds stay current.
///
/// # Errors
/// [`ProductError::StockBelowReserved`] when the new stock could not cover what is already
/// reserved for orders.
pub(crate) fn apply_changes(
    current: &ProductRow,
    changes: &ProductChanges,
    now: NaiveDateTime,
) -> Result<Option<ProductRow>, ProductError> {
    let mut next = current.clone();
    if let Some(sku) = &changes.sku {
        next.sku = sku.as_str().to_owned();
    }
    if let Some(name) = &changes.name {
        next.name = name.as_str().to_owned();
    }
    if let Some(description) = &changes.description {
        next.description = description.as_str().to_owned();
    }
    if let Some(price) = changes.price {
        next.price_amount = price.amount;
        next.price_currency = price.currency.as_str().to_owned();
    }
    if let Some(stock) = changes.stock {
        if stock < current.reserved {
            return Err(ProductError::StockBelowReserved {
                requested: stock,
                reserved: current.reserved,
            });
        }
        next.stock = stock;
    }
    if next == *current {
        return Ok(None);
    }
    next.version = current.version + 1;
    next.updated_at = now;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use product_api::ProductName;

    fn row(stock: i64, reserved: i64) -> ProductRow {
        let now = kernel::time::now();
        ProductRow {
            id: "id".into(),
            sku: "S".into(),
            name: "n".into(),
            description: String::new(),
            price_amount: 1,
            price_currency: "EUR".into(),
            stock,
            reserved,
            version: 3,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn stock_may_not_drop_below_reserved() {
        let changes = ProductChanges {
            stock: Some(4),
            ..Default::default()
        };
        let err = apply_changes(&row(10, 5), &changes, kernel::time::now()).unwrap_err();
        assert!(matches!(
            err,
            ProductError::StockBelowReserved {
                requested: 4,
                reserved: 5
            }
        ));
    }

    #[test]
    fn only_given_fields_change_and_the_version_moves() {
        let changes = ProductChanges {
            name: Some(ProductName::parse("New").unwrap()),
            ..Default::default()
        };
        let next = apply_changes(&row(10, 5), &changes, kernel::time::now())
            .unwrap()
            .unwrap();
        assert_eq!(next.name, "New");
        assert_eq!(next.stock, 10);
        assert_eq!(next.version, 4);
    }

    #[test]
    fn changes_to_the_current_values_change_nothing() {
        let current = row(10, 5);
        let same = ProductChanges {
            name: Some(ProductName::parse("n").unwrap()),
            stock: Some(10),
            ..Default::default()
        };
        for changes in [ProductChanges::default(), same] {
            let next = apply_changes(&current, &changes, kernel::time::now()).unwrap();
            assert_eq!(next, None, "{changes:?}");
        }
    }
}
