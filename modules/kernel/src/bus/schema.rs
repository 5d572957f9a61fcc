//! The kernel's bus tables (see migrations/kernel).

diesel::table! {
    bus_events (seq) {
        seq -> BigInt,
        id -> Text,
        source -> Text,
        #[sql_name = "type"]
        kind -> Text,
        subject -> Text,
        time -> Timestamp,
        data -> Text,
    }
}

diesel::table! {
    bus_deliveries (seq, subscriber) {
        seq -> BigInt,
        subscriber -> Text,
        subject -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    bus_inbox (subscriber, event_id) {
        subscriber -> Text,
        event_id -> Text,
        handled_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(bus_events, bus_deliveries, bus_inbox);
