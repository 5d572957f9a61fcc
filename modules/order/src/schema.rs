//! The order module's tables. Private to the module.

diesel::table! {
    orders (id) {
        id -> Text,
        customer -> Text,
        status -> Text,
        total_amount -> BigInt,
        currency -> Text,
        cancel_reason -> Nullable<Text>,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    order_items (order_id, product_id) {
        order_id -> Text,
        product_id -> Text,
        sku -> Text,
        name -> Text,
        unit_amount -> BigInt,
        quantity -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(orders, order_items);
