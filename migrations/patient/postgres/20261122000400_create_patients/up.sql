-- Patient module: clinical records. Ids are UUID text (v7, so text order is creation
-- order); times are UTC. Personal data (identifier, name, birth date, telecom, address) and
-- clinical free text are stored only encrypted (AES-256-GCM, `<key id>:<base64 nonce‖ct>`);
-- the identifier and the lower-cased family name are searchable through keyed hashes
-- (HMAC-SHA256), never in plaintext.
CREATE TABLE patients (
    id              TEXT      PRIMARY KEY NOT NULL,
    identifier_hash TEXT      NOT NULL,
    identifier_enc  TEXT      NOT NULL,
    family_hash     TEXT      NOT NULL,
    name_enc        TEXT      NOT NULL,
    gender          TEXT      NOT NULL CHECK (gender IN ('male', 'female', 'other', 'unknown')),
    birth_date_enc  TEXT      NOT NULL,
    telecom_enc     TEXT      NOT NULL,
    address_enc     TEXT,
    version         BIGINT    NOT NULL DEFAULT 1,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    -- Soft delete: the record stays for the audit trail.
    deleted_at      TIMESTAMP
);
-- An identifier belongs to one living patient; a deleted patient's may be registered again.
CREATE UNIQUE INDEX patients_identifier_idx ON patients (identifier_hash)
    WHERE deleted_at IS NULL;
CREATE INDEX patients_family_idx ON patients (family_hash, id);

CREATE TABLE patient_diagnoses (
    id              TEXT      PRIMARY KEY NOT NULL,
    patient_id      TEXT      NOT NULL REFERENCES patients (id),
    code            TEXT      NOT NULL,
    description_enc TEXT      NOT NULL,
    onset           DATE      NOT NULL,
    status          TEXT      NOT NULL CHECK (status IN ('active', 'resolved', 'inactive')),
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX patient_diagnoses_patient_idx ON patient_diagnoses (patient_id, id);

CREATE TABLE patient_treatments (
    id             TEXT      PRIMARY KEY NOT NULL,
    patient_id     TEXT      NOT NULL REFERENCES patients (id),
    diagnosis_id   TEXT      REFERENCES patient_diagnoses (id),
    plan_enc       TEXT      NOT NULL,
    medication_enc TEXT      NOT NULL,
    dosage_enc     TEXT      NOT NULL,
    period_start   DATE      NOT NULL,
    period_end     DATE,
    status         TEXT      NOT NULL CHECK (status IN ('planned', 'active', 'completed', 'stopped')),
    created_at     TIMESTAMP NOT NULL,
    CHECK (period_end IS NULL OR period_end >= period_start)
);
CREATE INDEX patient_treatments_patient_idx ON patient_treatments (patient_id, id);

-- Who read or wrote which record. No foreign key: a list entry names no patient, and the
-- trail must outlive anything it describes.
CREATE TABLE patient_audit (
    id         TEXT      PRIMARY KEY NOT NULL,
    actor      TEXT      NOT NULL,
    role       TEXT      NOT NULL,
    action     TEXT      NOT NULL,
    resource   TEXT      NOT NULL,
    patient_id TEXT,
    request_id TEXT      NOT NULL,
    at         TIMESTAMP NOT NULL
);
CREATE INDEX patient_audit_patient_idx ON patient_audit (patient_id, id);

-- Append-only: the database refuses to change, remove or truncate an audit entry,
-- whatever the application does.
CREATE FUNCTION patient_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'patient_audit is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER patient_audit_no_update_or_delete BEFORE UPDATE OR DELETE ON patient_audit
    FOR EACH ROW EXECUTE FUNCTION patient_audit_append_only();
CREATE TRIGGER patient_audit_no_truncate BEFORE TRUNCATE ON patient_audit
    FOR EACH STATEMENT EXECUTE FUNCTION patient_audit_append_only();
