DROP TABLE IF EXISTS patient_audit;
DROP FUNCTION IF EXISTS patient_audit_append_only();
DROP TABLE IF EXISTS patient_treatments;
DROP TABLE IF EXISTS patient_diagnoses;
DROP TABLE IF EXISTS patients;
