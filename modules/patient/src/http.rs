//! HTTP handlers of the patient module, mounted under `/api/v1`. Only `clinician` and
//! `admin` get in (the audit trail: `admin` only); the role is checked before the body is
//! read. Each handler parses its input into domain values, calls the [`PatientService`]
//! with the caller and request id (for the audit log) and shapes the response; no rule
//! lives here.

use actix_web::{
    HttpResponse, delete, get,
    http::{StatusCode, header},
    patch, post, put, web,
};
use kernel::{
    auth::{AdminOnly, AllowedRoles, Authorized},
    error::ApiError,
    http::{
        IfMatch, Json, Query,
        docs::{
            AuthProblems, BodyProblems, ConflictProblem, NotFoundProblem, PreconditionProblem,
            ValidationProblem,
        },
        json_with_etag,
        middleware::RequestId,
        with_location,
    },
};
use patient_api::{
    AccessContext, AuditPage, ClinicalStaff, Diagnosis, DiagnosisId, DiagnosisInput, DiagnosisPage,
    FhirPatient, NewDiagnosis, NewPatient, NewTreatment, PageParams, PageQuery, Patient,
    PatientChanges, PatientId, PatientInput, PatientListParams, PatientPage, PatientPatch,
    PatientQuery, PatientService, Treatment, TreatmentId, TreatmentInput, TreatmentPage,
    fhir::FHIR_JSON,
};
use utoipa_actix_web::service_config::ServiceConfig;

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

/// Register a patient.
///
/// The identifier (MRN) must be unique among patients. Personal data is stored encrypted.
/// The response carries the new patient's ETag and Location.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_patient",
    request_body = PatientInput,
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 201, description = "Registered", body = Patient,
            headers(("ETag" = String, description = "Current revision"), ("Location" = String))),
        BodyProblems,
        AuthProblems,
        ConflictProblem,
        ValidationProblem,
    )
)]
#[post("/patients")]
async fn create_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    body: Json<PatientInput>,
) -> Result<HttpResponse, ApiError> {
    let input = NewPatient::try_from(body.into_inner()).map_err(ApiError::validation)?;
    let patient = patients
        .register(&access(caller, request_id), input)
        .await?;
    Ok(with_location(
        json_with_etag(StatusCode::CREATED, &patient, patient.version),
        format!("/api/v1/patients/{}", patient.id),
    ))
}

/// List or search patients.
///
/// Newest first. Search by exact `identifier` (MRN) and/or by `family` name (exact,
/// case-insensitive); without a filter, every patient. Pages are cursor-based: pass `next`
/// as `cursor`. Audited (without the filter values).
#[utoipa::path(
    tag = TAG,
    operation_id = "list_patients",
    params(PatientListParams),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "One page of patients", body = PatientPage),
        AuthProblems,
        ValidationProblem,
    )
)]
#[get("/patients")]
async fn list_patients(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    params: Query<PatientListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = PatientQuery::try_from(params.into_inner()).map_err(ApiError::validation)?;
    let page = patients.list(&access(caller, request_id), query).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a patient.
///
/// Audited. A deleted patient is not found.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_patient",
    params(("id" = PatientId, Path, description = "Patient id")),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "The patient", body = Patient,
            headers(("ETag" = String, description = "Current revision; send it as If-Match to update"))),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/patients/{id}")]
async fn get_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
) -> Result<HttpResponse, ApiError> {
    let patient = patients
        .get(&access(caller, request_id), id.into_inner())
        .await?;
    Ok(json_with_etag(StatusCode::OK, &patient, patient.version))
}

/// Replace a patient.
///
/// Every field is set (an absent `address` or `telecom` removes it). With `If-Match`, the
/// update applies only to that revision.
#[utoipa::path(
    tag = TAG,
    operation_id = "replace_patient",
    params(
        ("id" = PatientId, Path, description = "Patient id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being replaced"),
    ),
    request_body = PatientInput,
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "Replaced", body = Patient, headers(("ETag" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        PreconditionProblem,
        ValidationProblem,
    )
)]
#[put("/patients/{id}")]
async fn replace_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    if_match: IfMatch,
    body: Json<PatientInput>,
) -> Result<HttpResponse, ApiError> {
    let input = NewPatient::try_from(body.into_inner()).map_err(ApiError::validation)?;
    let patient = patients
        .update(
            &access(caller, request_id),
            id.into_inner(),
            if_match.into(),
            PatientChanges::from(input),
        )
        .await?;
    Ok(json_with_etag(StatusCode::OK, &patient, patient.version))
}

/// Update some fields of a patient.
///
/// A JSON merge patch: absent (or null) fields stay as they are, except `address`, which
/// null removes; `telecom` and `name.given` are replaced whole.
#[utoipa::path(
    tag = TAG,
    operation_id = "patch_patient",
    params(
        ("id" = PatientId, Path, description = "Patient id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being changed"),
    ),
    request_body(content = PatientPatch, content_type = "application/merge-patch+json"),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "Updated", body = Patient, headers(("ETag" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        PreconditionProblem,
        ValidationProblem,
    )
)]
#[patch("/patients/{id}")]
async fn patch_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    if_match: IfMatch,
    body: Json<PatientPatch>,
) -> Result<HttpResponse, ApiError> {
    let changes = PatientChanges::try_from(body.into_inner()).map_err(ApiError::validation)?;
    let patient = patients
        .update(
            &access(caller, request_id),
            id.into_inner(),
            if_match.into(),
            changes,
        )
        .await?;
    Ok(json_with_etag(StatusCode::OK, &patient, patient.version))
}

/// Delete a patient.
///
/// A soft delete: the patient is not found from then on, but its records stay and its
/// audit trail remains readable by admins.
#[utoipa::path(
    tag = TAG,
    operation_id = "delete_patient",
    params(
        ("id" = PatientId, Path, description = "Patient id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the revision being deleted"),
    ),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 204, description = "Deleted"),
        AuthProblems,
        NotFoundProblem,
        PreconditionProblem,
    )
)]
#[delete("/patients/{id}")]
async fn delete_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    if_match: IfMatch,
) -> Result<HttpResponse, ApiError> {
    patients
        .delete(
            &access(caller, request_id),
            id.into_inner(),
            if_match.into(),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Record a diagnosis.
///
/// `code` is an ICD-10 code such as `E11.9`; `onset` may not be in the future.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_diagnosis",
    params(("id" = PatientId, Path, description = "Patient id")),
    request_body = DiagnosisInput,
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 201, description = "Recorded", body = Diagnosis, headers(("Location" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[post("/patients/{id}/diagnoses")]
async fn create_diagnosis(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    body: Json<DiagnosisInput>,
) -> Result<HttpResponse, ApiError> {
    let input = NewDiagnosis::try_from(body.into_inner()).map_err(ApiError::validation)?;
    let patient = id.into_inner();
    let diagnosis = patients
        .record_diagnosis(&access(caller, request_id), patient, input)
        .await?;
    Ok(with_location(
        HttpResponse::Created().json(&diagnosis),
        format!("/api/v1/patients/{patient}/diagnoses/{}", diagnosis.id),
    ))
}

/// List a patient's diagnoses.
///
/// Newest first, cursor-paged.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_diagnoses",
    params(("id" = PatientId, Path, description = "Patient id"), PageParams),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "One page of diagnoses", body = DiagnosisPage),
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[get("/patients/{id}/diagnoses")]
async fn list_diagnoses(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::try_from(params.into_inner()).map_err(ApiError::validation)?;
    let diagnoses = patients
        .list_diagnoses(&access(caller, request_id), id.into_inner(), page)
        .await?;
    Ok(HttpResponse::Ok().json(diagnoses))
}

/// Get a diagnosis.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_diagnosis",
    params(
        ("id" = PatientId, Path, description = "Patient id"),
        ("did" = DiagnosisId, Path, description = "Diagnosis id"),
    ),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "The diagnosis", body = Diagnosis),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/patients/{id}/diagnoses/{did}")]
async fn get_diagnosis(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    path: web::Path<(PatientId, DiagnosisId)>,
) -> Result<HttpResponse, ApiError> {
    let (patient, diagnosis) = path.into_inner();
    let diagnosis = patients
        .get_diagnosis(&access(caller, request_id), patient, diagnosis)
        .await?;
    Ok(HttpResponse::Ok().json(diagnosis))
}

/// Plan a treatment.
///
/// `period.end`, when given, may not be before `period.start`; `diagnosis_id`, when given,
/// must be one of this patient's diagnoses.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_treatment",
    params(("id" = PatientId, Path, description = "Patient id")),
    request_body = TreatmentInput,
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 201, description = "Planned", body = Treatment, headers(("Location" = String))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[post("/patients/{id}/treatments")]
async fn create_treatment(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    body: Json<TreatmentInput>,
) -> Result<HttpResponse, ApiError> {
    let input = NewTreatment::try_from(body.into_inner()).map_err(ApiError::validation)?;
    let patient = id.into_inner();
    let treatment = patients
        .plan_treatment(&access(caller, request_id), patient, input)
        .await?;
    Ok(with_location(
        HttpResponse::Created().json(&treatment),
        format!("/api/v1/patients/{patient}/treatments/{}", treatment.id),
    ))
}

/// List a patient's treatments.
///
/// Newest first, cursor-paged.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_treatments",
    params(("id" = PatientId, Path, description = "Patient id"), PageParams),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "One page of treatments", body = TreatmentPage),
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[get("/patients/{id}/treatments")]
async fn list_treatments(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::try_from(params.into_inner()).map_err(ApiError::validation)?;
    let treatments = patients
        .list_treatments(&access(caller, request_id), id.into_inner(), page)
        .await?;
    Ok(HttpResponse::Ok().json(treatments))
}

/// Get a treatment.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_treatment",
    params(
        ("id" = PatientId, Path, description = "Patient id"),
        ("tid" = TreatmentId, Path, description = "Treatment id"),
    ),
    security(("bearer" = ["clinician", "admin"])),
    responses(
        (status = 200, description = "The treatment", body = Treatment),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/patients/{id}/treatments/{tid}")]
async fn get_treatment(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    path: web::Path<(PatientId, TreatmentId)>,
) -> Result<HttpResponse, ApiError> {
    let (patient, treatment) = path.into_inner();
    let treatment = patients
        .get_treatment(&access(caller, request_id), patient, treatment)
        .await?;
    Ok(HttpResponse::Ok().json(treatment))
}

/// A patient's audit trail.
///
/// Every read and write of the patient's records: who (`actor`, `role`), what (`action`,
/// `resource`), when and in which request. Newest first, cursor-paged. Admins only;
/// readable after the patient was deleted.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_patient_audit",
    params(("id" = PatientId, Path, description = "Patient id"), PageParams),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "One page of audit entries", body = AuditPage),
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[get("/patients/{id}/audit")]
async fn list_patient_audit(
    caller: Authorized<AdminOnly>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery::try_from(params.into_inner()).map_err(ApiError::validation)?;
    let trail = patients
        .audit_trail(&access(caller, request_id), id.into_inner(), page)
        .await?;
    Ok(HttpResponse::Ok().json(trail))
}

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
async fn get_fhir_patient(
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
