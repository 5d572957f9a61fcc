//! Helpers shared by the product crate's integration tests.
#![allow(dead_code)]

use kernel::money::{Currency, Money};
use product_api::{
    NewProduct, ProductId, ProductInput, ProductService, ReservationLine, ReservationLines,
};

/// Creates a product priced 2.50 EUR with `stock` units through the service.
pub async fn product(products: &dyn ProductService, sku: &str, stock: i64) -> ProductId {
    let input = ProductInput {
        sku: sku.into(),
        name: format!("Product {sku}"),
        description: String::new(),
        price: Money::new(250, Currency::parse("EUR").unwrap()),
        stock,
    };
    products
        .create(NewProduct::try_from(input).unwrap())
        .await
        .unwrap()
        .id
}

/// Reservation lines from `(product, quantity)` pairs.
pub fn lines(items: &[(ProductId, i64)]) -> ReservationLines {
    ReservationLines::parse(
        items
            .iter()
            .map(|&(product_id, quantity)| ReservationLine {
                product_id,
                quantity,
            })
            .collect(),
    )
    .unwrap()
}
