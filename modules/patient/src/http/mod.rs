//! HTTP handlers of the patient module, mounted under `/api/v1`. Only `clinician` and
//! `admin` get in (the audit trail: `admin` only); the role is checked before the body is
//! read. Each handler parses its input into domain values, calls the [`PatientService`]
//! with the caller and request id (for the audit log) and shapes the response; no rule
//! lives here.
//!
//! One file per resource: `patients`, `clinical` (diagnoses and treatments), `audit` (the
//! audit trail) and `fhir` (the FHIR R4 view).

use actix_web::web;
use kernel::{
    auth::{AllowedRoles, Authorized},
    http::middleware::RequestId,
};
use patient_api::{AccessContext, PatientService};
use utoipa_actix_web::service_config::ServiceConfig;

mod audit;
mod clinical;
mod fhir;
mod patients;

use audit::list_patient_audit;
use clinical::{
    create_diagnosis, create_treatment, get_diagnosis, get_treatment, list_diagnoses,
    list_treatments,
};
use fhir::get_fhir_patient;
use patients::{
    create_patient, delete_patient, get_patient, list_patients, patch_patient, replace_patient,
};

const TAG: &str = "patient";
const FHIR_TAG: &str = "fhir";

/// Mounts the patient handlers; the binary puts them under `/api/v1`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_patient)
        .service(list_patients)
        .service(get_patient)
        .service(replace_patient)
        .service(patch_patient)
        .service(delete_patient)
        .service(create_diagnosis)
        .service(list_diagnoses)
        .service(get_diagnosis)
        .service(create_treatment)
        .service(list_treatments)
        .service(get_treatment)
        .service(list_patient_audit)
        .service(get_fhir_patient);
}

type Patients = web::Data<dyn PatientService>;

fn access<R: AllowedRoles>(caller: Authorized<R>, request_id: RequestId) -> AccessContext {
    AccessContext::new(caller.0, request_id.0)
}
