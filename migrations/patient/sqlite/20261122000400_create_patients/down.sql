DROP TRIGGER IF EXISTS patient_audit_no_delete;
DROP TRIGGER IF EXISTS patient_audit_no_update;
DROP TABLE IF EXISTS patient_audit;
DROP TABLE IF EXISTS patient_treatments;
DROP TABLE IF EXISTS patient_diagnoses;
DROP TABLE IF EXISTS patients;
