//! The product module's tables. Private to the module: nobody else reads them.

diesel::table! {
    products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        description -> Text,
        price_amount -> BigInt,
        price_currency -> Text,
        stock -> BigInt,
        reserved -> BigInt,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    product_reservations (id) {
        id -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    product_reservation_lines (reservation_id, product_id) {
        reservation_id -> Text,
        product_id -> Text,
        quantity -> BigInt,
        sku -> Text,
        name -> Text,
        unit_amount -> BigInt,
        currency -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    products,
    product_reservations,
    product_reservation_lines
);
