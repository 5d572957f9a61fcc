//! The payment module's table. Private to the module: nobody else reads it.

diesel::table! {
    payments (id) {
        id -> Text,
        order_id -> Text,
        customer -> Text,
        amount -> BigInt,
        currency -> Text,
        refunded -> BigInt,
        status -> Text,
        brand -> Text,
        last4 -> Text,
        failure_code -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}
