//! Patients: register, list or search, read, replace, patch and (softly) delete.

use actix_web::{HttpResponse, delete, get, http::StatusCode, patch, post, put, web};
use kernel::{
    auth::Authorized,
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
    ClinicalStaff, NewPatient, Patient, PatientChanges, PatientId, PatientInput, PatientListParams,
    PatientPage, PatientPatch, PatientQuery,
};

use super::{Patients, TAG, access};

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
pub(super) async fn create_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    body: Json<PatientInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewPatient::try_from)?;
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
pub(super) async fn list_patients(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    params: Query<PatientListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(PatientQuery::try_from)?;
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
pub(super) async fn get_patient(
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
/// update applies only to that revision. A replacement with the current content changes
/// nothing: the version and ETag stay.
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
pub(super) async fn replace_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    if_match: IfMatch,
    body: Json<PatientInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(NewPatient::try_from)?;
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
/// null removes; `telecom` and `name.given` are replaced whole. A patch that changes nothing
/// keeps the version and ETag, so other clients' `If-Match` stays current.
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
pub(super) async fn patch_patient(
    caller: Authorized<ClinicalStaff>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    if_match: IfMatch,
    body: Json<PatientPatch>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.parse(PatientChanges::try_from)?;
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
pub(super) async fn delete_patient(
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
