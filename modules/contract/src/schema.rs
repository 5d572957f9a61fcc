//! The contract module's tables. Private to the module: nobody else reads them.

diesel::table! {
    contracts (id) {
        id -> Text,
        name -> Text,
        parties -> Text,
        code -> Text,
        state -> Text,
        triggers -> Text,
        status -> Text,
        version -> Nullable<BigInt>,
        code_sha256 -> Nullable<Text>,
        seq -> BigInt,
        head_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deployed_at -> Nullable<Timestamp>,
        terminated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    contract_parties (party, contract_id) {
        contract_id -> Text,
        party -> Text,
    }
}

diesel::table! {
    contract_triggers (event_type, contract_id) {
        contract_id -> Text,
        event_type -> Text,
    }
}

diesel::table! {
    contract_executions (id) {
        id -> Text,
        contract_id -> Text,
        version -> BigInt,
        seq -> BigInt,
        input -> Text,
        output -> Text,
        state -> Text,
        caller_sub -> Text,
        caller_role -> Text,
        executed_at -> Timestamp,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    contracts,
    contract_parties,
    contract_triggers,
    contract_executions
);
