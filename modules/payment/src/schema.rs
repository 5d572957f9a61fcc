//! The payment module's tables. Private to the module: nobody else reads them.

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

diesel::table! {
    payment_refunds (id) {
        id -> Text,
        payment_id -> Text,
        amount -> BigInt,
        status -> Text,
        origin -> Text,
        failure_code -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    payment_gateway_sim_operations (idempotency_key) {
        idempotency_key -> Text,
        kind -> Text,
        payment_id -> Nullable<Text>,
        amount -> BigInt,
        currency -> Text,
        outcome -> Text,
        decline_code -> Nullable<Text>,
        created_at -> Timestamp,
    }
}
