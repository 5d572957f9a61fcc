//! The patient module's tables. Private to the module: nobody else reads them. Columns
//! ending in `_enc` hold sealed values (see `crypto`), those ending in `_hash` keyed hashes.

diesel::table! {
    patients (id) {
        id -> Text,
        identifier_hash -> Text,
        identifier_enc -> Text,
        family_hash -> Text,
        name_enc -> Text,
        gender -> Text,
        birth_date_enc -> Text,
        telecom_enc -> Text,
        address_enc -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    patient_diagnoses (id) {
        id -> Text,
        patient_id -> Text,
        code -> Text,
        description_enc -> Text,
        onset -> Date,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    patient_treatments (id) {
        id -> Text,
        patient_id -> Text,
        diagnosis_id -> Nullable<Text>,
        plan_enc -> Text,
        medication_enc -> Text,
        dosage_enc -> Text,
        period_start -> Date,
        period_end -> Nullable<Date>,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    patient_audit (id) {
        id -> Text,
        actor -> Text,
        role -> Text,
        action -> Text,
        resource -> Text,
        patient_id -> Nullable<Text>,
        request_id -> Text,
        at -> Timestamp,
    }
}
