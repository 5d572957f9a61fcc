DROP TABLE contract_executions;
DROP TABLE contract_triggers;
DROP TABLE contract_parties;
DROP TABLE contracts;
