//! A patient as a FHIR R4 Patient resource (`application/fhir+json`).

use actix_web::{HttpResponse, get, http::header, web};
use kernel::{
    auth::Authorized,
    error::ApiError,
    http::{
        docs::{AuthProblems, NotFoundProblem},
        middleware::RequestId,
    },
};
use patient_api::{ClinicalStaff, FhirPatient, PatientId, fhir::FHIR_JSON};

use super::{FHIR_TAG, Patients, access};

/// Get a patient as a FHIR R4 Patient resource.
///
/// `application/fhir+json`; the MRN is the identifier with system `urn:tessera:mrn`, and
/// empty lists and absent values are left out, as FHIR requires. Audited as `fhir.read`.
#[utoipa::path(
    tag = FHIR_TAG,
    operation_id = "get_fhir_patient",
    params(("id" = PatientId, Path, description = "Patient id")),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "The FHIR R4 Patient resource", body = FhirPatient,
            content_type = "application/fhir+json",
            headers(("ETag" = String, description = "Weak ETag of the revision (`W/\"<versionId>\"`)"))),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/fhir/Patient/{id}")]
pub(super) async fn get_fhir_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
) -> Result<HttpResponse, ApiError> {
    let resource = patients
        .get_fhir(&access(caller, request_id), id.into_inner())
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .insert_header((header::ETAG, format!("W/\"{}\"", resource.meta.version_id)))
        .json(&resource))
}
