//! The in-process implementation of [`PatientService`]: the caller's role is checked here
//! too (the trait is a door of its own, not only the HTTP layer's), then each call runs its
//! store method on the blocking pool inside a span named after the trait method. Spans
//! carry ids, roles and counts, never personal data.

use async_trait::async_trait;
use kernel::{
    auth::{AdminOnly, AllowedRoles, Role},
    db::{BlockingStore, DbConnection},
    version::ExpectedVersion,
};
use patient_api::{
    AccessContext, AuditAction, AuditPage, ClinicalStaff, Diagnosis, DiagnosisId, DiagnosisPage,
    FhirPatient, NewDiagnosis, NewPatient, NewTreatment, PageQuery, Patient, PatientChanges,
    PatientError, PatientId, PatientPage, PatientQuery, PatientService, Treatment, TreatmentId,
    TreatmentPage,
};

use crate::{domain::require, store::Store};

#[derive(Debug, Clone)]
pub(crate) struct LocalPatients {
    store: Store,
}

impl LocalPatients {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Runs `work` on the blocking pool for a caller whose role is in `R`.
    async fn run<R, T, F>(&self, access: &AccessContext, work: F) -> Result<T, PatientError>
    where
        R: AllowedRoles,
        F: FnOnce(&Store, &AccessContext, &mut DbConnection) -> Result<T, PatientError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        require::<R>(access)?;
        let access = access.clone();
        self.store
            .run(move |store, conn| work(store, &access, conn))
            .await
    }
}

fn role(access: &AccessContext) -> Role {
    access.actor.role
}

#[async_trait]
impl PatientService for LocalPatients {
    #[tracing::instrument(
        name = "patient.register",
        skip_all,
        fields(role = %role(access), patient_id = tracing::field::Empty)
    )]
    async fn register(
        &self,
        access: &AccessContext,
        patient: NewPatient,
    ) -> Result<Patient, PatientError> {
        let created = self
            .run::<ClinicalStaff, _, _>(access, move |s, a, c| s.register(c, a, &patient))
            .await?;
        tracing::Span::current().record("patient_id", tracing::field::display(created.id));
        Ok(created)
    }

    #[tracing::instrument(name = "patient.get", skip_all, fields(role = %role(access), patient_id = %id))]
    async fn get(&self, access: &AccessContext, id: PatientId) -> Result<Patient, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.read(c, a, id, AuditAction::PatientRead)
        })
        .await
    }

    #[tracing::instrument(name = "patient.get_fhir", skip_all, fields(role = %role(access), patient_id = %id))]
    async fn get_fhir(
        &self,
        access: &AccessContext,
        id: PatientId,
    ) -> Result<FhirPatient, PatientError> {
        let patient = self
            .run::<ClinicalStaff, _, _>(access, move |s, a, c| {
                s.read(c, a, id, AuditAction::FhirRead)
            })
            .await?;
        Ok(FhirPatient::from(&patient))
    }

    #[tracing::instrument(
        name = "patient.list",
        skip_all,
        fields(
            role = %role(access),
            by_identifier = query.identifier.is_some(),
            by_family = query.family.is_some(),
            limit = query.limit,
            found = tracing::field::Empty,
        )
    )]
    async fn list(
        &self,
        access: &AccessContext,
        query: PatientQuery,
    ) -> Result<PatientPage, PatientError> {
        let page = self
            .run::<ClinicalStaff, _, _>(access, move |s, a, c| s.list(c, a, &query))
            .await?;
        tracing::Span::current().record("found", page.items.len());
        Ok(page)
    }

    #[tracing::instrument(name = "patient.update", skip_all, fields(role = %role(access), patient_id = %id))]
    async fn update(
        &self,
        access: &AccessContext,
        id: PatientId,
        if_match: ExpectedVersion,
        changes: PatientChanges,
    ) -> Result<Patient, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.update(c, a, id, &if_match, &changes)
        })
        .await
    }

    #[tracing::instrument(name = "patient.delete", skip_all, fields(role = %role(access), patient_id = %id))]
    async fn delete(
        &self,
        access: &AccessContext,
        id: PatientId,
        if_match: ExpectedVersion,
    ) -> Result<(), PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| s.delete(c, a, id, &if_match))
            .await
    }

    #[tracing::instrument(
        name = "patient.record_diagnosis",
        skip_all,
        fields(role = %role(access), patient_id = %patient, code = %diagnosis.code)
    )]
    async fn record_diagnosis(
        &self,
        access: &AccessContext,
        patient: PatientId,
        diagnosis: NewDiagnosis,
    ) -> Result<Diagnosis, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.record_diagnosis(c, a, patient, &diagnosis)
        })
        .await
    }

    #[tracing::instrument(name = "patient.list_diagnoses", skip_all, fields(role = %role(access), patient_id = %patient, limit = page.limit))]
    async fn list_diagnoses(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<DiagnosisPage, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.list_diagnoses(c, a, patient, page)
        })
        .await
    }

    #[tracing::instrument(name = "patient.get_diagnosis", skip_all, fields(role = %role(access), patient_id = %patient, diagnosis_id = %id))]
    async fn get_diagnosis(
        &self,
        access: &AccessContext,
        patient: PatientId,
        id: DiagnosisId,
    ) -> Result<Diagnosis, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| s.get_diagnosis(c, a, patient, id))
            .await
    }

    #[tracing::instrument(
        name = "patient.plan_treatment",
        skip_all,
        fields(role = %role(access), patient_id = %patient, status = treatment.status.as_str())
    )]
    async fn plan_treatment(
        &self,
        access: &AccessContext,
        patient: PatientId,
        treatment: NewTreatment,
    ) -> Result<Treatment, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.plan_treatment(c, a, patient, &treatment)
        })
        .await
    }

    #[tracing::instrument(name = "patient.list_treatments", skip_all, fields(role = %role(access), patient_id = %patient, limit = page.limit))]
    async fn list_treatments(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<TreatmentPage, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| {
            s.list_treatments(c, a, patient, page)
        })
        .await
    }

    #[tracing::instrument(name = "patient.get_treatment", skip_all, fields(role = %role(access), patient_id = %patient, treatment_id = %id))]
    async fn get_treatment(
        &self,
        access: &AccessContext,
        patient: PatientId,
        id: TreatmentId,
    ) -> Result<Treatment, PatientError> {
        self.run::<ClinicalStaff, _, _>(access, move |s, a, c| s.get_treatment(c, a, patient, id))
            .await
    }

    #[tracing::instrument(name = "patient.audit_trail", skip_all, fields(role = %role(access), patient_id = %patient, limit = page.limit))]
    async fn audit_trail(
        &self,
        access: &AccessContext,
        patient: PatientId,
        page: PageQuery,
    ) -> Result<AuditPage, PatientError> {
        self.run::<AdminOnly, _, _>(access, move |s, a, c| s.audit_trail(c, a, patient, page))
            .await
    }
}
