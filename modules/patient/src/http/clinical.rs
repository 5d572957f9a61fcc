//! A patient's diagnoses and treatments: record or plan one, list them, read one.

use actix_web::{HttpResponse, get, post, web};
use kernel::{
    auth::Authorized,
    error::ApiError,
    http::{
        Json, Query,
        docs::{AuthProblems, BodyProblems, NotFoundProblem, ValidationProblem},
        middleware::RequestId,
        with_location,
    },
};
use patient_api::{
    ClinicalStaff, Diagnosis, DiagnosisId, DiagnosisInput, DiagnosisPage, NewDiagnosis,
    NewTreatment, PageParams, PageQuery, PatientId, Treatment, TreatmentId, TreatmentInput,
    TreatmentPage,
};

use super::{Patients, TAG, access};

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
pub(super) async fn create_diagnosis(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    body: Json<DiagnosisInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewDiagnosis::try_from)?;
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
pub(super) async fn list_diagnoses(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = params.parse(PageQuery::try_from)?;
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
pub(super) async fn get_diagnosis(
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
pub(super) async fn create_treatment(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    body: Json<TreatmentInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewTreatment::try_from)?;
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
pub(super) async fn list_treatments(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = params.parse(PageQuery::try_from)?;
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
pub(super) async fn get_treatment(
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
