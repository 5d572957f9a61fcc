-- Contract module. `parties` and `triggers` are JSON arrays as written (their order kept);
-- `contract_parties` and `contract_triggers` index them for "my contracts" and for the
-- trigger subscriber. `seq` counts ledger entries and is the per-contract lock: an execution
-- commits only with `UPDATE … WHERE seq = <the seq it read>`. `head_hash` is the last
-- entry's hash, so a truncated ledger does not verify.
CREATE TABLE contracts (
    id            TEXT      PRIMARY KEY NOT NULL,
    name          TEXT      NOT NULL,
    parties       TEXT      NOT NULL,
    code          TEXT      NOT NULL,
    state         TEXT      NOT NULL,
    triggers      TEXT      NOT NULL,
    status        TEXT      NOT NULL CHECK (status IN ('draft', 'deployed', 'terminated')),
    version       BIGINT,
    code_sha256   TEXT,
    seq           BIGINT    NOT NULL DEFAULT 0 CHECK (seq >= 0),
    head_hash     TEXT      NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    deployed_at   TIMESTAMP,
    terminated_at TIMESTAMP
);
CREATE INDEX contracts_name_idx ON contracts (name, status);

CREATE TABLE contract_parties (
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    party       TEXT NOT NULL,
    PRIMARY KEY (party, contract_id)
);
CREATE INDEX contract_parties_contract_idx ON contract_parties (contract_id);

CREATE TABLE contract_triggers (
    contract_id TEXT NOT NULL REFERENCES contracts (id),
    event_type  TEXT NOT NULL,
    PRIMARY KEY (event_type, contract_id)
);
CREATE INDEX contract_triggers_contract_idx ON contract_triggers (contract_id);

-- The ledger. Rows are only ever inserted; `hash` chains each to its predecessor.
CREATE TABLE contract_executions (
    id          TEXT      PRIMARY KEY NOT NULL,
    contract_id TEXT      NOT NULL REFERENCES contracts (id),
    version     BIGINT    NOT NULL,
    seq         BIGINT    NOT NULL CHECK (seq > 0),
    input       TEXT      NOT NULL,
    output      TEXT      NOT NULL,
    state       TEXT      NOT NULL,
    caller_sub  TEXT      NOT NULL,
    caller_role TEXT      NOT NULL,
    executed_at TIMESTAMP NOT NULL,
    prev_hash   TEXT      NOT NULL,
    hash        TEXT      NOT NULL,
    UNIQUE (contract_id, seq)
);
