//! Clinical records through the public trait, on SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database:
//! encryption at rest and key rotation, search, soft deletion, the audit log and its
//! append-only table, clinical records, and events without personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use diesel::RunQueryDsl;
use kernel::{auth::Role, db::Backend, version::ExpectedVersion};
use patient_api::{
    AccessContext, AuditAction, DiagnosisId, NewTreatment, PageQuery, PatientChanges, PatientError,
    PatientListParams, PatientPatch, PatientQuery, Period, TreatmentInput, TreatmentStatus,
};
use support::*;

kernel::on_both_backends!(
    personal_data_is_stored_only_encrypted_and_searchable_only_through_keyed_hashes,
    values_encrypted_under_a_retired_key_still_decrypt_after_rotation,
    patients_are_found_by_exact_identifier_and_by_family_name_in_any_case,
    a_list_without_filters_pages_through_every_living_patient_newest_first,
    a_duplicate_identifier_conflicts_on_create_and_on_update,
    updates_honour_if_match_and_bump_the_version,
    a_deleted_patient_is_gone_everywhere_but_in_its_audit_trail,
    every_read_list_and_write_is_audited_with_actor_role_and_request_id,
    the_database_refuses_to_update_or_delete_audit_entries,
    diagnoses_and_treatments_belong_to_their_patient,
    a_treatment_cannot_point_at_another_patients_diagnosis,
    events_carry_ids_and_codes_but_no_personal_data,
    only_clinical_staff_reach_records_and_only_admins_the_audit_trail,
);

fn query(identifier: Option<&str>, family: Option<&str>, limit: Option<u32>) -> PatientQuery {
    PatientQuery::try_from(PatientListParams {
        identifier: identifier.map(Into::into),
        family: family.map(Into::into),
        limit,
        cursor: None,
    })
    .unwrap()
}

fn tag(version: i64) -> ExpectedVersion {
    ExpectedVersion::exactly(version)
}

async fn personal_data_is_stored_only_encrypted_and_searchable_only_through_keyed_hashes(
    backend: Backend,
) {
    let Some(f) = fixture(backend) else { return };
    let created = register(&f, zebulon(MRN)).await;
    let id = created.id;
    f.patients
        .record_diagnosis(&clinician(), id, diagnosis("E11.9"))
        .await
        .unwrap();

    let rows = stored_patients(&f);
    assert_eq!(rows.len(), 1, "the row exists");
    let row = &rows[0];
    assert_eq!(row.id, id.to_string());
    assert_eq!(row.gender, "male", "gender may stay plain");
    assert_no_personal_data("the stored row", &row.text());
    for sealed in [
        &row.identifier_enc,
        &row.name_enc,
        &row.birth_date_enc,
        &row.telecom_enc,
        row.address_enc.as_ref().unwrap(),
    ] {
        assert!(
            sealed.starts_with("dev:"),
            "sealed under the key id: {sealed}"
        );
    }
    assert_eq!(row.identifier_hash.len(), 64);
    assert_eq!(row.family_hash.len(), 64);

    if backend == Backend::Sqlite {
        // The bytes on disk: the database file and its write-ahead log, where fresh pages live.
        let path = f
            .database
            .url()
            .strip_prefix("sqlite://")
            .unwrap()
            .to_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(&id.to_string()),
            "the patient is in the file at all"
        );
        assert_no_personal_data("the SQLite files", &text);
    }

    let read = f.patients.get(&clinician(), id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.name.family, FAMILY);
    assert_eq!(read.telecom[0].value, PHONE);
}

async fn values_encrypted_under_a_retired_key_still_decrypt_after_rotation(backend: Backend) {
    let Some(f) = fixture_with(backend, patient_keys(&["k1"])) else {
        return;
    };
    let old = register(&f, zebulon(MRN)).await;
    assert!(stored_patients(&f)[0].name_enc.starts_with("k1:"));

    let rotated = f.restarted_with(&patient_keys(&["k1", "k2"]));
    assert_eq!(rotated.get(&clinician(), old.id).await.unwrap(), old);
    let found = rotated
        .list(&clinician(), query(Some(MRN), None, None))
        .await
        .unwrap();
    assert_eq!(
        found.items,
        std::slice::from_ref(&old),
        "search survives rotation"
    );

    let new = rotated
        .register(&clinician(), someone("MRN-NEW", "Newcomer"))
        .await
        .unwrap();
    let rows = stored_patients(&f);
    let key_of = |id: patient_api::PatientId| {
        let row = rows.iter().find(|r| r.id == id.to_string()).unwrap();
        row.name_enc.split(':').next().unwrap().to_owned()
    };
    assert_eq!((key_of(old.id), key_of(new.id)), ("k1".into(), "k2".into()));

    // A change seals the record again, under the active key.
    let changes = PatientChanges {
        gender: Some(patient_api::Gender::Other),
        ..Default::default()
    };
    rotated
        .update(&clinician(), old.id, ExpectedVersion::Any, changes)
        .await
        .unwrap();
    let row = stored_patients(&f)
        .into_iter()
        .find(|r| r.id == old.id.to_string())
        .unwrap();
    assert!(row.identifier_enc.starts_with("k2:") && row.telecom_enc.starts_with("k2:"));

    // Without the retired key, what it sealed cannot be read: an error, never garbage.
    let k1_only_record = register(&f, someone("MRN-K1", "Keyone")).await;
    let without_k1 = f.restarted_with(&patient::PatientSettings {
        encryption_keys: patient_keys(&["k2"]).encryption_keys,
        ..patient_keys(&["k1", "k2"])
    });
    let err = without_k1
        .get(&clinician(), k1_only_record.id)
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::Unexpected(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("Keyone"));
}

async fn patients_are_found_by_exact_identifier_and_by_family_name_in_any_case(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let zeb = register(&f, zebulon(MRN)).await;
    let cousin = register(&f, someone("MRN-2", "QUIXOTIC")).await;
    let other = register(&f, someone("MRN-3", "Smith")).await;

    let by_family = f
        .patients
        .list(&clinician(), query(None, Some("quixotic"), None))
        .await
        .unwrap();
    let ids: Vec<_> = by_family.items.iter().map(|p| p.id).collect();
    assert_eq!(ids, [cousin.id, zeb.id], "newest first, any case");

    let by_mrn = f
        .patients
        .list(&clinician(), query(Some(MRN), None, None))
        .await
        .unwrap();
    assert_eq!(by_mrn.items, std::slice::from_ref(&zeb));

    // Exact: no prefixes, no other case.
    for near in ["MRN-ZQ", "mrn-zq-4471"] {
        let page = f
            .patients
            .list(&clinician(), query(Some(near), None, None))
            .await
            .unwrap();
        assert!(page.items.is_empty(), "{near}");
    }
    let page = f
        .patients
        .list(&clinician(), query(None, Some("Quix"), None))
        .await
        .unwrap();
    assert!(page.items.is_empty());

    let both = f
        .patients
        .list(&clinician(), query(Some("MRN-3"), Some("smith"), None))
        .await
        .unwrap();
    assert_eq!(both.items, [other]);
    let neither = f
        .patients
        .list(&clinician(), query(Some("MRN-3"), Some("quixotic"), None))
        .await
        .unwrap();
    assert!(neither.items.is_empty());

    // A changed family name is found under the new name only.
    let changes = PatientChanges::try_from(
        serde_json::from_value::<PatientPatch>(serde_json::json!({"name": {"family": "Panza"}}))
            .unwrap(),
    )
    .unwrap();
    f.patients
        .update(&clinician(), cousin.id, ExpectedVersion::Any, changes)
        .await
        .unwrap();
    let page = f
        .patients
        .list(&clinician(), query(None, Some("PANZA"), None))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let page = f
        .patients
        .list(&clinician(), query(None, Some("quixotic"), None))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

async fn a_list_without_filters_pages_through_every_living_patient_newest_first(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(register(&f, someone(&format!("MRN-{i}"), "Doe")).await.id);
    }
    f.patients
        .delete(&clinician(), ids[2], ExpectedVersion::Any)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = f
            .patients
            .list(
                &clinician(),
                PatientQuery::try_from(PatientListParams {
                    limit: Some(2),
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .unwrap(),
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|p| p.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [ids[4], ids[3], ids[1], ids[0]]);
}

async fn a_duplicate_identifier_conflicts_on_create_and_on_update(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    register(&f, zebulon(MRN)).await;
    let err = f
        .patients
        .register(&clinician(), someone(MRN, "Other"))
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::DuplicateIdentifier), "{err:?}");
    assert!(!err.to_string().contains(MRN), "{err}");

    let other = register(&f, someone("MRN-OTHER", "Other")).await;
    let changes = PatientChanges::from(someone(MRN, "Other"));
    let err = f
        .patients
        .update(&clinician(), other.id, ExpectedVersion::Any, changes)
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::DuplicateIdentifier), "{err:?}");
    assert_eq!(stored_patients(&f).len(), 2);
}

async fn updates_honour_if_match_and_bump_the_version(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let created = register(&f, zebulon(MRN)).await;
    assert_eq!(created.version, 1);
    let patch: PatientPatch = serde_json::from_value(serde_json::json!({
        "telecom": [{"system": "email", "value": "new@example.org"}],
        "address": null
    }))
    .unwrap();
    let updated = f
        .patients
        .update(
            &clinician(),
            created.id,
            tag(1),
            PatientChanges::try_from(patch).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.telecom.len(), 1);
    assert_eq!(updated.address, None);
    assert_eq!(updated.name, created.name, "untouched fields stay");
    assert_eq!(updated.identifier, MRN);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(updated.created_at, created.created_at);

    let stale = f
        .patients
        .update(
            &clinician(),
            created.id,
            tag(1),
            PatientChanges::from(zebulon(MRN)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, PatientError::PreconditionFailed),
        "{stale:?}"
    );
    let err = f
        .patients
        .delete(&clinician(), created.id, tag(1))
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::PreconditionFailed), "{err:?}");

    let replaced = f
        .patients
        .update(
            &clinician(),
            created.id,
            tag(2),
            PatientChanges::from(zebulon(MRN)),
        )
        .await
        .unwrap();
    assert_eq!(replaced.version, 3);
    assert_eq!(replaced.address, created.address);
    assert_eq!(
        f.patients.get(&clinician(), created.id).await.unwrap(),
        replaced
    );
}

async fn a_deleted_patient_is_gone_everywhere_but_in_its_audit_trail(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let p = register(&f, zebulon(MRN)).await;
    let d = f
        .patients
        .record_diagnosis(&clinician(), p.id, diagnosis("E11.9"))
        .await
        .unwrap();
    f.patients.delete(&clinician(), p.id, tag(1)).await.unwrap();

    let c = clinician();
    let page = PageQuery::default();
    let not_found = |r: Result<(), PatientError>| {
        assert!(
            matches!(r, Err(PatientError::NotFound(id)) if id == p.id),
            "{r:?}"
        );
    };
    not_found(f.patients.get(&c, p.id).await.map(drop));
    not_found(f.patients.get_fhir(&c, p.id).await.map(drop));
    not_found(f.patients.list_diagnoses(&c, p.id, page).await.map(drop));
    not_found(f.patients.get_diagnosis(&c, p.id, d.id).await.map(drop));
    not_found(f.patients.list_treatments(&c, p.id, page).await.map(drop));
    not_found(
        f.patients
            .record_diagnosis(&c, p.id, diagnosis("J45"))
            .await
            .map(drop),
    );
    not_found(
        f.patients
            .update(&c, p.id, ExpectedVersion::Any, PatientChanges::default())
            .await
            .map(drop),
    );
    not_found(f.patients.delete(&c, p.id, ExpectedVersion::Any).await);
    let listed = f.patients.list(&c, query(Some(MRN), None, None)).await;
    assert!(listed.unwrap().items.is_empty());

    // The record stays, and admins can still see who did what.
    assert_eq!(stored_patients(&f).len(), 1);
    let trail = f.patients.audit_trail(&admin(), p.id, page).await.unwrap();
    assert_eq!(trail.items[0].action, AuditAction::PatientDelete);

    // The identifier is free again for a new registration.
    let again = register(&f, zebulon(MRN)).await;
    assert_ne!(again.id, p.id);

    let never = patient_api::PatientId::new();
    let err = f
        .patients
        .audit_trail(&admin(), never, page)
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::NotFound(_)));
}

async fn every_read_list_and_write_is_audited_with_actor_role_and_request_id(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let doc = |request: &str| {
        AccessContext::new(principal("dr-house", Role::Clinician), request.to_owned())
    };
    let p = f
        .patients
        .register(&doc("r-create"), zebulon(MRN))
        .await
        .unwrap();
    f.patients.get(&doc("r-read"), p.id).await.unwrap();
    f.patients
        .list(&doc("r-list"), query(Some(MRN), Some(FAMILY), Some(5)))
        .await
        .unwrap();
    f.patients
        .update(
            &doc("r-update"),
            p.id,
            ExpectedVersion::Any,
            PatientChanges::default(),
        )
        .await
        .unwrap();
    f.patients.get_fhir(&doc("r-fhir"), p.id).await.unwrap();
    let d = f
        .patients
        .record_diagnosis(&doc("r-dx"), p.id, diagnosis("E11.9"))
        .await
        .unwrap();
    f.patients
        .get_diagnosis(&doc("r-dx-read"), p.id, d.id)
        .await
        .unwrap();
    f.patients
        .list_diagnoses(&doc("r-dx-list"), p.id, PageQuery::default())
        .await
        .unwrap();
    let t = f
        .patients
        .plan_treatment(&doc("r-tx"), p.id, treatment(Some(d.id)))
        .await
        .unwrap();
    f.patients
        .get_treatment(&doc("r-tx-read"), p.id, t.id)
        .await
        .unwrap();
    f.patients
        .list_treatments(&doc("r-tx-list"), p.id, PageQuery::default())
        .await
        .unwrap();
    // A failed read discloses nothing and is not an access.
    assert!(
        f.patients
            .get_diagnosis(&doc("r-missing"), p.id, DiagnosisId::new())
            .await
            .is_err()
    );

    let trail = f
        .patients
        .audit_trail(&admin(), p.id, PageQuery::default())
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = trail
        .items
        .iter()
        .map(|e| (e.action.as_str(), e.request_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("treatment.list", "r-tx-list"),
            ("treatment.read", "r-tx-read"),
            ("treatment.create", "r-tx"),
            ("diagnosis.list", "r-dx-list"),
            ("diagnosis.read", "r-dx-read"),
            ("diagnosis.create", "r-dx"),
            ("fhir.read", "r-fhir"),
            ("patient.update", "r-update"),
            ("patient.read", "r-read"),
            ("patient.create", "r-create"),
        ],
        "newest first; the list has no patient id"
    );
    for entry in &trail.items {
        assert_eq!(
            (entry.actor.as_str(), entry.role),
            ("dr-house", Role::Clinician)
        );
        assert_eq!(entry.patient_id, Some(p.id));
        assert!(
            entry.resource.starts_with(&format!("Patient/{}", p.id)),
            "{}",
            entry.resource
        );
    }
    assert_eq!(
        trail.items[4].resource,
        format!("Patient/{}/Diagnosis/{}", p.id, d.id)
    );

    let all = stored_audit(&f);
    let list = all.iter().find(|e| e.action == "patient.list").unwrap();
    assert_eq!(
        (
            list.actor.as_str(),
            list.role.as_str(),
            list.request_id.as_str()
        ),
        ("dr-house", "clinician", "r-list")
    );
    assert_eq!(list.patient_id, None);
    assert_eq!(
        list.resource,
        "Patient?identifier=[redacted]&family=[redacted]&limit=5"
    );
    assert_no_personal_data("the audit table", &format!("{all:?}"));

    // Reading the trail is itself audited, and pages newest first.
    let again = f
        .patients
        .audit_trail(
            &admin(),
            p.id,
            PageQuery {
                limit: 2,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.items[0].action, AuditAction::AuditRead);
    assert_eq!(again.items[0].actor, "root");
    assert_eq!(again.items[0].request_id, "req-admin");
    let next = f
        .patients
        .audit_trail(
            &admin(),
            p.id,
            PageQuery::try_from(patient_api::PageParams {
                limit: Some(2),
                cursor: again.next.clone(),
            })
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        next.items.iter().map(|e| e.action).collect::<Vec<_>>(),
        [AuditAction::TreatmentRead, AuditAction::TreatmentCreate]
    );
}

async fn the_database_refuses_to_update_or_delete_audit_entries(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let p = register(&f, zebulon(MRN)).await;
    f.patients.get(&clinician(), p.id).await.unwrap();
    let before = stored_audit(&f);
    assert_eq!(before.len(), 2);

    let mut conn = f.db.get().unwrap();
    let update =
        diesel::sql_query("UPDATE patient_audit SET actor = 'mallory'").execute(&mut *conn);
    let err = update.expect_err("an UPDATE of the audit table must fail");
    assert!(err.to_string().contains("append-only"), "{err}");
    let delete = diesel::sql_query("DELETE FROM patient_audit").execute(&mut *conn);
    assert!(delete.is_err(), "a DELETE of the audit table must fail");
    drop(conn);

    let after = stored_audit(&f);
    assert_eq!(format!("{after:?}"), format!("{before:?}"));
}

fn treatment(diagnosis: Option<DiagnosisId>) -> NewTreatment {
    NewTreatment::try_from(TreatmentInput {
        plan: "Lifestyle advice and metformin".into(),
        medication: "Metformin".into(),
        dosage: "500 mg twice daily".into(),
        period: Period {
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            end: None,
        },
        status: TreatmentStatus::Active,
        diagnosis_id: diagnosis,
    })
    .unwrap()
}

async fn diagnoses_and_treatments_belong_to_their_patient(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let c = clinician();
    let p = register(&f, zebulon(MRN)).await;
    let q = register(&f, someone("MRN-Q", "Other")).await;
    let first = f
        .patients
        .record_diagnosis(&c, p.id, diagnosis("e11.9"))
        .await
        .unwrap();
    assert_eq!(first.code, "E11.9", "codes are kept in upper case");
    let second = f
        .patients
        .record_diagnosis(&c, p.id, diagnosis("J45.909"))
        .await
        .unwrap();
    let t = f
        .patients
        .plan_treatment(&c, p.id, treatment(Some(first.id)))
        .await
        .unwrap();
    assert_eq!(t.diagnosis_id, Some(first.id));
    assert_eq!(t.medication, "Metformin");

    let listed = f
        .patients
        .list_diagnoses(&c, p.id, PageQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [second.clone(), first.clone()]);
    assert_eq!(
        f.patients.get_diagnosis(&c, p.id, first.id).await.unwrap(),
        first
    );
    assert_eq!(f.patients.get_treatment(&c, p.id, t.id).await.unwrap(), t);
    let treatments = f
        .patients
        .list_treatments(&c, p.id, PageQuery::default())
        .await
        .unwrap();
    assert_eq!(treatments.items, std::slice::from_ref(&t));

    // Through another patient, they do not exist.
    let err = f
        .patients
        .get_diagnosis(&c, q.id, first.id)
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::DiagnosisNotFound(_)), "{err:?}");
    let err = f.patients.get_treatment(&c, q.id, t.id).await.unwrap_err();
    assert!(matches!(err, PatientError::TreatmentNotFound(_)), "{err:?}");
    let none = f
        .patients
        .list_diagnoses(&c, q.id, PageQuery::default())
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let paged = f
        .patients
        .list_diagnoses(
            &c,
            p.id,
            PageQuery {
                limit: 1,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(paged.items, [second]);
    assert!(paged.next.is_some());
}

async fn a_treatment_cannot_point_at_another_patients_diagnosis(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let c = clinician();
    let p = register(&f, zebulon(MRN)).await;
    let q = register(&f, someone("MRN-Q", "Other")).await;
    let theirs = f
        .patients
        .record_diagnosis(&c, q.id, diagnosis("E11.9"))
        .await
        .unwrap();
    for wrong in [theirs.id, DiagnosisId::new()] {
        let err = f
            .patients
            .plan_treatment(&c, p.id, treatment(Some(wrong)))
            .await
            .unwrap_err();
        match err {
            PatientError::Invalid(errors) => assert_eq!(errors[0].field, "diagnosis_id"),
            other => panic!("expected a 422 naming diagnosis_id, got {other:?}"),
        }
    }
    let none = f
        .patients
        .list_treatments(&c, p.id, PageQuery::default())
        .await
        .unwrap();
    assert!(none.items.is_empty(), "nothing was stored");
}

async fn events_carry_ids_and_codes_but_no_personal_data(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let c = clinician();
    let p = register(&f, zebulon(MRN)).await;
    let d = f
        .patients
        .record_diagnosis(&c, p.id, diagnosis("E11.9"))
        .await
        .unwrap();
    f.patients
        .plan_treatment(&c, p.id, treatment(Some(d.id)))
        .await
        .unwrap();
    // A replacement that changes something (an identical one changes nothing: no event).
    let mut replacement = zebulon_json(MRN);
    replacement["gender"] = serde_json::json!("other");
    f.patients
        .update(
            &c,
            p.id,
            ExpectedVersion::Any,
            PatientChanges::from(input(replacement)),
        )
        .await
        .unwrap();
    f.patients
        .delete(&c, p.id, ExpectedVersion::Any)
        .await
        .unwrap();
    // A failed write publishes nothing.
    let _ = f
        .patients
        .plan_treatment(&c, p.id, treatment(None))
        .await
        .unwrap_err();

    let subject = p.id.to_string();
    let kinds = event_kinds(&f);
    let expected: Vec<(String, String)> = [
        "patient.registered",
        "diagnosis.recorded",
        "treatment.planned",
        "patient.updated",
        "patient.updated",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), subject.clone()))
    .collect();
    assert_eq!(kinds, expected);

    let events = kernel::testing::published_events(&f.db);
    assert_eq!(events[1].data["code"], "E11.9");
    assert_eq!(events[3].data["deleted"], false);
    assert_eq!(events[4].data["deleted"], true);
    let text = events_text(&f);
    assert_no_personal_data("the published events", &text);
    assert!(!text.contains("Metformin") && !text.contains("diabetes"));
}

async fn only_clinical_staff_reach_records_and_only_admins_the_audit_trail(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let p = register(&f, zebulon(MRN)).await;
    let page = PageQuery::default();
    for role in [Role::Customer, Role::Service] {
        let who = AccessContext::new(principal("x", role), "r");
        let forbidden = |r: Result<(), PatientError>| {
            assert!(
                matches!(r, Err(PatientError::Forbidden(_))),
                "{role}: {r:?}"
            );
        };
        forbidden(f.patients.get(&who, p.id).await.map(drop));
        forbidden(f.patients.get_fhir(&who, p.id).await.map(drop));
        forbidden(
            f.patients
                .list(&who, query(None, None, None))
                .await
                .map(drop),
        );
        forbidden(
            f.patients
                .register(&who, someone("MRN-X", "X"))
                .await
                .map(drop),
        );
        forbidden(f.patients.delete(&who, p.id, ExpectedVersion::Any).await);
        forbidden(f.patients.list_diagnoses(&who, p.id, page).await.map(drop));
        forbidden(f.patients.audit_trail(&who, p.id, page).await.map(drop));
    }
    let err = f
        .patients
        .audit_trail(&clinician(), p.id, page)
        .await
        .unwrap_err();
    assert!(matches!(err, PatientError::Forbidden(_)));
    // Refusals touch nothing: one patient, one audit entry (its registration).
    assert_eq!(stored_patients(&f).len(), 1);
    assert_eq!(stored_audit(&f).len(), 1);
}
