//! A patient's audit trail, for admins.

use actix_web::{HttpResponse, get, web};
use kernel::{
    auth::{AdminOnly, Authorized},
    error::ApiError,
    http::{
        Query,
        docs::{AuthProblems, NotFoundProblem, ValidationProblem},
        middleware::RequestId,
    },
};
use patient_api::{AuditPage, PageParams, PageQuery, PatientId};

use super::{Patients, TAG, access};

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
pub(super) async fn list_patient_audit(
    caller: Authorized<AdminOnly>,
    request_id: RequestId,
    patients: Patients,
    id: web::Path<PatientId>,
    params: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let page = params.parse(PageQuery::try_from)?;
    let trail = patients
        .audit_trail(&access(caller, request_id), id.into_inner(), page)
        .await?;
    Ok(HttpResponse::Ok().json(trail))
}
