//! HTTP handlers of the contract module, mounted under `/api/v1`. Admins edit, deploy and
//! terminate; admins, services and the customers who are parties read and execute. Each
//! handler checks the role before reading the body, checks a body against the draft rules
//! of `domain` (so one 422 names the fields of the wrong type and those that break a rule;
//! the service applies the same rules again), calls the [`ContractService`] and shapes the
//! response.

use actix_web::{HttpResponse, delete, get, http::header, patch, post, web};
use contract_api::{
    Contract, ContractId, ContractListParams, ContractPage, ContractPatch, ContractQuery,
    ContractService, ExecuteContract, Execution, ExecutionId, ExecutionListParams, ExecutionPage,
    ExecutionQuery, LedgerVerification, NewContract,
};
use kernel::{
    auth::{AdminOnly, AllowedRoles, Authorized, Role},
    error::ApiError,
    http::{
        Json, Query,
        docs::{AuthProblems, BodyProblems, ConflictProblem, NotFoundProblem, ValidationProblem},
    },
};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    ContractSettings,
    domain::{Changes, Draft},
};

pub(crate) const TAG: &str = "contract";

/// Mounts the contract handlers; the binary puts them under `/api/v1`.
pub(crate) fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_contract)
        .service(list_contracts)
        .service(get_contract)
        .service(patch_contract)
        .service(delete_contract)
        .service(deploy_contract)
        .service(terminate_contract)
        .service(execute_contract)
        .service(list_executions)
        .service(get_execution)
        .service(verify_ledger);
}

type Contracts = web::Data<dyn ContractService>;

/// `admin`, `service` or `customer`: who may read and execute contracts (a customer only
/// those it is a party to).
#[derive(Debug)]
pub(crate) struct Participants;

impl AllowedRoles for Participants {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Service, Role::Customer];
}

fn created<T: serde::Serialize>(body: &T, location: &str) -> HttpResponse {
    let mut response = HttpResponse::Created().json(body);
    if let Ok(location) = location.parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Create a draft contract.
///
/// The code (one CEL expression) is compiled on save: a syntax error is a 422 naming `code`
/// with its line and column. The program sees `input`, `state`, `now` (a timestamp) and
/// `caller` (`{sub, role}`) and must evaluate to a map with optional `output` and `state`.
#[utoipa::path(
    tag = TAG,
    operation_id = "create_contract",
    request_body = NewContract,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created as a draft", body = Contract,
            headers(("Location" = String, description = "The new contract"))),
        BodyProblems,
        AuthProblems,
        ValidationProblem,
    )
)]
#[post("/contracts")]
async fn create_contract(
    caller: Authorized<AdminOnly>,
    contracts: Contracts,
    settings: web::Data<ContractSettings>,
    body: Json<NewContract>,
) -> Result<HttpResponse, ApiError> {
    let input = body.parse(|input| Draft::parse(input.clone(), &settings).map(|_| input))?;
    let contract = contracts.create(caller.principal(), input).await?;
    Ok(created(
        &contract,
        &format!("/api/v1/contracts/{}", contract.id),
    ))
}

/// List contracts.
///
/// Newest first; customers see only the contracts they are a party to. Pages are
/// cursor-based: pass `next` as `cursor`.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_contracts",
    params(ContractListParams),
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 200, description = "One page of contracts", body = ContractPage),
        AuthProblems,
        ValidationProblem,
    )
)]
#[get("/contracts")]
async fn list_contracts(
    caller: Authorized<Participants>,
    contracts: Contracts,
    params: Query<ContractListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(ContractQuery::try_from)?;
    Ok(HttpResponse::Ok().json(contracts.list(caller.principal(), query).await?))
}

/// Get a contract.
///
/// A customer who is not a party gets a 404.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 200, description = "The contract", body = Contract),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/contracts/{id}")]
async fn get_contract(
    caller: Authorized<Participants>,
    contracts: Contracts,
    id: web::Path<ContractId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(contracts.get(caller.principal(), id.into_inner()).await?))
}

/// Change a contract.
///
/// Absent (or null) fields stay; a patch that changes nothing leaves `updated_at` as it was.
/// Code, state, triggers and parties change only on drafts: changing them on a deployed or
/// terminated contract is a 409 (deploy a new contract instead).
#[utoipa::path(
    tag = TAG,
    operation_id = "patch_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    request_body = ContractPatch,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The changed contract", body = Contract),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        ValidationProblem,
    )
)]
#[patch("/contracts/{id}")]
async fn patch_contract(
    caller: Authorized<AdminOnly>,
    contracts: Contracts,
    id: web::Path<ContractId>,
    settings: web::Data<ContractSettings>,
    body: Json<ContractPatch>,
) -> Result<HttpResponse, ApiError> {
    let patch = body.parse(|patch| Changes::parse(patch.clone(), &settings).map(|_| patch))?;
    let contract = contracts
        .update(caller.principal(), id.into_inner(), patch)
        .await?;
    Ok(HttpResponse::Ok().json(contract))
}

/// Delete a draft.
///
/// Deployed and terminated contracts keep their ledger and cannot be deleted (409).
#[utoipa::path(
    tag = TAG,
    operation_id = "delete_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Deleted"),
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
    )
)]
#[delete("/contracts/{id}")]
async fn delete_contract(
    caller: Authorized<AdminOnly>,
    contracts: Contracts,
    id: web::Path<ContractId>,
) -> Result<HttpResponse, ApiError> {
    contracts
        .delete(caller.principal(), id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deploy a draft.
///
/// Freezes the code: status `deployed`, a `version` (1 for the first deployment of the
/// contract's name, then 2, …) and the code's SHA-256. From now on the contract can be
/// executed and its `triggers` run it.
#[utoipa::path(
    tag = TAG,
    operation_id = "deploy_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The deployed contract", body = Contract),
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
    )
)]
#[post("/contracts/{id}/deploy")]
async fn deploy_contract(
    caller: Authorized<AdminOnly>,
    contracts: Contracts,
    id: web::Path<ContractId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        contracts
            .deploy(caller.principal(), id.into_inner())
            .await?,
    ))
}

/// Terminate a deployed contract.
///
/// It runs no more; its ledger stays readable and verifiable.
#[utoipa::path(
    tag = TAG,
    operation_id = "terminate_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The terminated contract", body = Contract),
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
    )
)]
#[post("/contracts/{id}/terminate")]
async fn terminate_contract(
    caller: Authorized<AdminOnly>,
    contracts: Contracts,
    id: web::Path<ContractId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        contracts
            .terminate(caller.principal(), id.into_inner())
            .await?,
    ))
}

/// Execute a contract.
///
/// Evaluates the deployed code with `input`, the current `state`, `now` and `caller`, and
/// appends the execution to the contract's ledger; a returned `state` replaces the stored
/// one atomically (concurrent executions of one contract serialize). Input size and
/// evaluation time are bounded: a larger input is a 413, an evaluation that takes too long,
/// fails, returns something other than a map with optional `output` and `state`, or leaves
/// too large a state is a 422 — and nothing is stored. Admins, services and the parties
/// (customers) may execute; to any other customer the contract does not exist (404, as for
/// reading it); a draft or terminated contract is a 409.
#[utoipa::path(
    tag = TAG,
    operation_id = "execute_contract",
    params(("id" = ContractId, Path, description = "Contract id")),
    request_body = ExecuteContract,
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 201, description = "Executed and appended to the ledger", body = Execution,
            headers(("Location" = String, description = "The execution"))),
        BodyProblems,
        AuthProblems,
        NotFoundProblem,
        ConflictProblem,
        (status = 422, description = "Invalid body, or the evaluation failed, took too long \
            or returned a result of the wrong shape; nothing was stored",
            body = kernel::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/contracts/{id}/executions")]
async fn execute_contract(
    caller: Authorized<Participants>,
    contracts: Contracts,
    id: web::Path<ContractId>,
    body: Json<ExecuteContract>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let execution = contracts
        .execute(caller.principal(), id, body.into_inner()?.input)
        .await?;
    Ok(created(
        &execution,
        &format!("/api/v1/contracts/{id}/executions/{}", execution.id),
    ))
}

/// List a contract's executions.
///
/// In ledger order (ascending `seq`). Pages are cursor-based: pass `next` as `cursor`.
#[utoipa::path(
    tag = TAG,
    operation_id = "list_executions",
    params(("id" = ContractId, Path, description = "Contract id"), ExecutionListParams),
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 200, description = "One page of executions", body = ExecutionPage),
        AuthProblems,
        NotFoundProblem,
        ValidationProblem,
    )
)]
#[get("/contracts/{id}/executions")]
async fn list_executions(
    caller: Authorized<Participants>,
    contracts: Contracts,
    id: web::Path<ContractId>,
    params: Query<ExecutionListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(ExecutionQuery::try_from)?;
    Ok(HttpResponse::Ok().json(
        contracts
            .list_executions(caller.principal(), id.into_inner(), query)
            .await?,
    ))
}

/// Get one execution of a contract.
#[utoipa::path(
    tag = TAG,
    operation_id = "get_execution",
    params(
        ("id" = ContractId, Path, description = "Contract id"),
        ("eid" = ExecutionId, Path, description = "Execution id"),
    ),
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 200, description = "The execution", body = Execution),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/contracts/{id}/executions/{eid}")]
async fn get_execution(
    caller: Authorized<Participants>,
    contracts: Contracts,
    path: web::Path<(ContractId, ExecutionId)>,
) -> Result<HttpResponse, ApiError> {
    let (id, eid) = path.into_inner();
    Ok(HttpResponse::Ok().json(contracts.get_execution(caller.principal(), id, eid).await?))
}

/// Verify a contract's ledger.
///
/// Recomputes every entry's hash (SHA-256 over the previous hash and the entry's canonical
/// JSON) and its link to the previous entry. An edited entry makes it `valid: false` with
/// the first bad `seq`.
#[utoipa::path(
    tag = TAG,
    operation_id = "verify_ledger",
    params(("id" = ContractId, Path, description = "Contract id")),
    security(("bearer" = ["admin", "service", "customer"])),
    responses(
        (status = 200, description = "What the verification found", body = LedgerVerification),
        AuthProblems,
        NotFoundProblem,
    )
)]
#[get("/contracts/{id}/ledger/verify")]
async fn verify_ledger(
    caller: Authorized<Participants>,
    contracts: Contracts,
    id: web::Path<ContractId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(
        contracts
            .verify_ledger(caller.principal(), id.into_inner())
            .await?,
    ))
}
