//! Contracts through the public trait and the bus, on SQLite and (when
//! `TESSERA_TEST_DATABASE_URL` is set) on PostgreSQL, each test with its own database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use contract::ContractSettings;
use contract_api::{
    ContractError, ContractId, ContractPatch, ContractQuery, ContractStatus, ExecutionQuery,
    GENESIS_HASH,
};
use futures_util::future::join_all;
use kernel::{
    auth::Role,
    bus::Event,
    module::Module,
    money::{Currency, Money},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::*;
use utoipa::ToSchema;

kernel::on_both_backends!(
    a_counter_carries_its_state_from_one_execution_to_the_next,
    the_same_input_state_and_now_give_the_same_output_and_hash,
    an_edited_ledger_entry_is_found_at_its_seq,
    a_truncated_ledger_does_not_verify,
    a_heavy_evaluation_is_stopped_at_the_bound_and_stores_nothing,
    an_input_over_the_bound_is_refused,
    a_syntax_error_names_the_line_and_column_of_the_code,
    code_over_the_size_bound_is_refused,
    a_runtime_error_stores_nothing,
    a_result_of_the_wrong_shape_stores_nothing,
    a_state_over_the_bound_stores_nothing,
    admins_services_and_parties_may_execute_and_nobody_else,
    only_admins_edit_deploy_and_terminate,
    customers_read_only_the_contracts_they_are_party_to,
    drafts_and_terminated_contracts_cannot_be_executed,
    a_deployed_contracts_code_is_frozen_and_it_cannot_be_deleted,
    deploying_numbers_the_versions_of_a_name_and_hashes_the_code,
    concurrent_executions_get_consecutive_seqs_and_a_valid_chain,
    executions_are_listed_in_ledger_order_page_by_page,
    a_triggering_event_runs_the_contract_once_as_the_bus,
    a_failing_triggered_run_is_skipped_and_recorded_nowhere,
    a_terminated_contract_is_no_longer_triggered,
    events_carry_ids_seq_and_hash_but_no_data,
);

fn fix(backend: kernel::db::Backend) -> Option<Fixture> {
    fixture(backend)
}

async fn a_counter_carries_its_state_from_one_execution_to_the_next(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    let first = f
        .contracts
        .execute(&customer("alice"), c.id, json!({}))
        .await
        .unwrap();
    let second = f
        .contracts
        .execute(&customer("alice"), c.id, json!({"by": 5}))
        .await
        .unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.state, json!({"n": 1}));
    assert_eq!(second.state, json!({"n": 6}));
    assert_eq!(second.output["n"], json!(6));
    assert_eq!(second.output["by"], json!("alice"));
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(second.prev_hash, first.hash);
    let stored = f.contracts.get(&admin(), c.id).await.unwrap();
    assert_eq!(stored.state, json!({"n": 6}));
    assert_eq!(stored.executions, 2);
    let verified = f.contracts.verify_ledger(&admin(), c.id).await.unwrap();
    assert!(verified.valid);
    assert_eq!(verified.length, 2);
    assert_eq!(verified.head, Some(second.hash));
}

/// Inserts, behind the module's back, a deployed contract with a chosen id, so two
/// databases can hold the same contract.
fn insert_contract(f: &Fixture, id: ContractId, code: &str, sha: &str) {
    sql(
        f,
        &format!(
            "INSERT INTO contracts (id, name, parties, code, state, triggers, status, version, \
             code_sha256, seq, head_hash, created_at, updated_at, deployed_at) VALUES \
             ('{id}', 'counter', '[\"alice\"]', '{}', '{{\"n\":0}}', '[]', 'deployed', 1, \
             '{sha}', 0, '{GENESIS_HASH}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', \
             '2026-01-01 00:00:00')",
            code.replace('\'', "''")
        ),
    );
}

async fn the_same_input_state_and_now_give_the_same_output_and_hash(backend: kernel::db::Backend) {
    let Some(a) = fix(backend) else { return };
    let Some(b) = fix(backend) else { return };
    let now: DateTime<Utc> = "2026-11-22T10:00:00.123456Z".parse().unwrap();
    *a.now.lock().unwrap() = Some(now);
    *b.now.lock().unwrap() = Some(now);
    let id = ContractId::new();
    for f in [&a, &b] {
        insert_contract(f, id, COUNTER, "sha");
    }
    let mut results = Vec::new();
    for f in [&a, &b] {
        let mut run = Vec::new();
        for input in [json!({"by": 2}), json!({"by": 3})] {
            run.push(f.contracts.execute(&admin(), id, input).await.unwrap());
        }
        results.push(run);
    }
    for (x, y) in results[0].iter().zip(&results[1]) {
        assert_eq!(x.output, y.output);
        assert_eq!(x.state, y.state);
        assert_eq!(x.hash, y.hash);
        assert_eq!(x.executed_at, now);
    }
    assert_eq!(
        results[0][1].output["at"],
        json!("2026-11-22T10:00:00.123456Z")
    );
}

async fn an_edited_ledger_entry_is_found_at_its_seq(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let edits = [
        ("input", "'{\"by\":100}'"),
        ("output", "'{\"n\":1000}'"),
        ("state", "'{\"n\":1000}'"),
        ("caller_sub", "'mallory'"),
        ("caller_role", "'service'"),
        ("executed_at", "'2020-01-01 00:00:00'"),
        ("version", "2"),
        (
            "hash",
            "'1111111111111111111111111111111111111111111111111111111111111111'",
        ),
        (
            "prev_hash",
            "'2222222222222222222222222222222222222222222222222222222222222222'",
        ),
        // The same JSON written differently is an edit too.
        ("input", "'{ \"by\": 1 }'"),
    ];
    for (column, value) in edits {
        let c = deployed_counter(&f).await;
        for _ in 0..3 {
            f.contracts
                .execute(&admin(), c.id, json!({"by": 1}))
                .await
                .unwrap();
        }
        assert!(
            f.contracts
                .verify_ledger(&admin(), c.id)
                .await
                .unwrap()
                .valid
        );
        tamper(&f, c.id, 2, column, value);
        let verified = f.contracts.verify_ledger(&admin(), c.id).await.unwrap();
        assert!(!verified.valid, "an edited {column} went unnoticed");
        assert_eq!(verified.first_bad_seq, Some(2), "{column}");
        assert_eq!(verified.length, 3);
    }
}

async fn a_truncated_ledger_does_not_verify(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    for _ in 0..3 {
        f.contracts
            .execute(&admin(), c.id, json!({}))
            .await
            .unwrap();
    }
    sql(
        &f,
        &format!(
            "DELETE FROM contract_executions WHERE contract_id = '{}' AND seq = 3",
            c.id
        ),
    );
    let verified = f.contracts.verify_ledger(&admin(), c.id).await.unwrap();
    assert!(!verified.valid);
    assert_eq!(verified.first_bad_seq, Some(3));
    assert_eq!(verified.length, 2);
}

async fn a_heavy_evaluation_is_stopped_at_the_bound_and_stores_nothing(
    backend: kernel::db::Backend,
) {
    let settings = ContractSettings {
        max_eval_ms: 50,
        ..Default::default()
    };
    let Some(f) = fixture_with(backend, settings) else {
        return;
    };
    let c = deployed(
        &f,
        draft(
            "{'state': {'n': 1}, 'output': input.xs.all(x, input.xs.all(y, x * y >= 0))}",
            json!({"n": 0}),
        ),
    )
    .await;
    let xs: Vec<i64> = (0..1500).collect();
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({ "xs": xs }))
        .await
        .unwrap_err();
    let ContractError::Evaluation(message) = err else {
        panic!("expected an evaluation error, got {err:?}");
    };
    assert!(message.contains("longer than 50 ms"), "{message}");
    assert_nothing_stored(&f, c.id, json!({"n": 0})).await;
}

async fn assert_nothing_stored(f: &Fixture, id: ContractId, state: Value) {
    let contract = f.contracts.get(&admin(), id).await.unwrap();
    assert_eq!(contract.state, state);
    assert_eq!(contract.executions, 0);
    let page = f
        .contracts
        .list_executions(&admin(), id, ExecutionQuery::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(
        kernel::testing::published_events(&f.db)
            .iter()
            .all(|e| e.kind != "contract.executed")
    );
}

async fn an_input_over_the_bound_is_refused(backend: kernel::db::Backend) {
    let settings = ContractSettings {
        max_input_bytes: 100,
        ..Default::default()
    };
    let Some(f) = fixture_with(backend, settings) else {
        return;
    };
    let c = deployed_counter(&f).await;
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({"by": 1, "pad": "x".repeat(100)}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ContractError::InputTooLarge { limit: 100, .. }),
        "{err:?}"
    );
    assert_nothing_stored(&f, c.id, json!({"n": 0})).await;
}

async fn a_syntax_error_names_the_line_and_column_of_the_code(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let err = f
        .contracts
        .create(&admin(), draft("{\n  'state': state +* 1\n}", json!({})))
        .await
        .unwrap_err();
    let ContractError::Invalid(errors) = err else {
        panic!("expected a validation error, got {err:?}");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "code");
    assert!(
        errors[0].message.contains("line 2"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("column"),
        "{}",
        errors[0].message
    );
    // A patch is compiled as well.
    let c = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap();
    let patch = ContractPatch {
        code: Some("1 +".into()),
        ..Default::default()
    };
    let err = f.contracts.update(&admin(), c.id, patch).await.unwrap_err();
    assert!(matches!(err, ContractError::Invalid(ref e) if e[0].field == "code"));
}

async fn code_over_the_size_bound_is_refused(backend: kernel::db::Backend) {
    let settings = ContractSettings {
        max_code_bytes: 64,
        ..Default::default()
    };
    let Some(f) = fixture_with(backend, settings) else {
        return;
    };
    let err = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Invalid(ref e) if e[0].field == "code"));
}

async fn a_runtime_error_stores_nothing(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed(
        &f,
        draft("{'state': {'n': state.n + input.missing}}", json!({"n": 0})),
    )
    .await;
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Evaluation(_)), "{err:?}");
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({"missing": "a string"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Evaluation(_)), "{err:?}");
    assert_nothing_stored(&f, c.id, json!({"n": 0})).await;
}

async fn a_result_of_the_wrong_shape_stores_nothing(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    for code in [
        "state.n + 1",
        "{'state': 5}",
        "{'state': {'n': 1}, 'extra': 1}",
    ] {
        let c = deployed(&f, draft(code, json!({"n": 0}))).await;
        let err = f
            .contracts
            .execute(&admin(), c.id, json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ContractError::Evaluation(_)),
            "{code}: {err:?}"
        );
        assert_nothing_stored(&f, c.id, json!({"n": 0})).await;
    }
}

async fn a_state_over_the_bound_stores_nothing(backend: kernel::db::Backend) {
    let settings = ContractSettings {
        max_state_bytes: 64,
        ..Default::default()
    };
    let Some(f) = fixture_with(backend, settings) else {
        return;
    };
    let c = deployed(&f, draft("{'state': {'s': input.s}}", json!({}))).await;
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({"s": "x".repeat(100)}))
        .await
        .unwrap_err();
    let ContractError::Evaluation(message) = err else {
        panic!("expected an evaluation error, got {err:?}");
    };
    assert!(message.contains("state"), "{message}");
    assert_nothing_stored(&f, c.id, json!({})).await;
}

async fn admins_services_and_parties_may_execute_and_nobody_else(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    for (who, seq) in [(admin(), 1), (service(), 2), (customer("alice"), 3)] {
        let e = f.contracts.execute(&who, c.id, json!({})).await.unwrap();
        assert_eq!(e.seq, seq);
        assert_eq!(
            (e.caller.sub.as_str(), e.caller.role),
            (who.sub.as_str(), who.role)
        );
    }
    // A role that never executes is refused; a customer who is no party learns nothing.
    let err = f
        .contracts
        .execute(&clinician(), c.id, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Forbidden(_)), "{err:?}");
    let err = f
        .contracts
        .execute(&customer("mallory"), c.id, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::NotFound(_)), "{err:?}");
    let err = f
        .contracts
        .execute(&admin(), ContractId::new(), json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::NotFound(_)));
    assert_eq!(f.contracts.get(&admin(), c.id).await.unwrap().executions, 3);
}

async fn only_admins_edit_deploy_and_terminate(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap();
    for who in [service(), customer("alice"), clinician()] {
        let forbidden = |r: Result<_, ContractError>| matches!(r, Err(ContractError::Forbidden(_)));
        assert!(forbidden(
            f.contracts
                .create(&who, draft(COUNTER, json!({})))
                .await
                .map(drop)
        ));
        assert!(forbidden(
            f.contracts
                .update(&who, c.id, ContractPatch::default())
                .await
                .map(drop)
        ));
        assert!(forbidden(f.contracts.deploy(&who, c.id).await.map(drop)));
        assert!(forbidden(f.contracts.terminate(&who, c.id).await.map(drop)));
        assert!(forbidden(f.contracts.delete(&who, c.id).await));
    }
}

async fn customers_read_only_the_contracts_they_are_party_to(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let mine = deployed_counter(&f).await;
    let mut other = draft(COUNTER, json!({"n": 0}));
    other.parties = vec!["bob".into()];
    let theirs = deployed(&f, other).await;
    let e = f
        .contracts
        .execute(&customer("alice"), mine.id, json!({}))
        .await
        .unwrap();
    assert_eq!(
        f.contracts
            .get(&customer("alice"), mine.id)
            .await
            .unwrap()
            .id,
        mine.id
    );
    let listed = f
        .contracts
        .list(&customer("alice"), ContractQuery::default())
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        [mine.id]
    );
    let all = f
        .contracts
        .list(&service(), ContractQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let alice = customer("alice");
    assert!(matches!(
        f.contracts.get(&alice, theirs.id).await,
        Err(ContractError::NotFound(_))
    ));
    let mallory = customer("mallory");
    assert!(matches!(
        f.contracts.get_execution(&mallory, mine.id, e.id).await,
        Err(ContractError::NotFound(_))
    ));
    assert!(matches!(
        f.contracts.verify_ledger(&mallory, mine.id).await,
        Err(ContractError::NotFound(_))
    ));
    assert!(matches!(
        f.contracts
            .list_executions(&mallory, mine.id, ExecutionQuery::default())
            .await,
        Err(ContractError::NotFound(_))
    ));
    assert_eq!(
        f.contracts
            .get_execution(&alice, mine.id, e.id)
            .await
            .unwrap(),
        e
    );
}

async fn drafts_and_terminated_contracts_cannot_be_executed(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap();
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Conflict(..)), "{err:?}");
    f.contracts.deploy(&admin(), c.id).await.unwrap();
    f.contracts
        .execute(&admin(), c.id, json!({}))
        .await
        .unwrap();
    let terminated = f.contracts.terminate(&admin(), c.id).await.unwrap();
    assert_eq!(terminated.status, ContractStatus::Terminated);
    assert!(terminated.terminated_at.is_some());
    let err = f
        .contracts
        .execute(&admin(), c.id, json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ContractError::Conflict(..)), "{err:?}");
    assert!(matches!(
        f.contracts.terminate(&admin(), c.id).await,
        Err(ContractError::Conflict(..))
    ));
    assert!(
        f.contracts
            .verify_ledger(&admin(), c.id)
            .await
            .unwrap()
            .valid
    );
}

async fn a_deployed_contracts_code_is_frozen_and_it_cannot_be_deleted(
    backend: kernel::db::Backend,
) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    let patch = ContractPatch {
        code: Some("{'output': 1}".into()),
        ..Default::default()
    };
    let err = f.contracts.update(&admin(), c.id, patch).await.unwrap_err();
    assert!(matches!(err, ContractError::Conflict(..)), "{err:?}");
    let patch = ContractPatch {
        state: Some(json!({"n": 100})),
        ..Default::default()
    };
    assert!(matches!(
        f.contracts.update(&admin(), c.id, patch).await,
        Err(ContractError::Conflict(..))
    ));
    // Its name may change.
    let renamed = f
        .contracts
        .update(
            &admin(),
            c.id,
            ContractPatch {
                name: Some("tally".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "tally");
    assert_eq!(renamed.code, COUNTER);
    assert!(matches!(
        f.contracts.delete(&admin(), c.id).await,
        Err(ContractError::Conflict(..))
    ));
    assert!(matches!(
        f.contracts.deploy(&admin(), c.id).await,
        Err(ContractError::Conflict(..))
    ));
    // A draft changes and is deleted.
    let d = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap();
    let changed = f
        .contracts
        .update(
            &admin(),
            d.id,
            ContractPatch {
                code: Some("{'output': 1}".into()),
                parties: Some(vec!["carol".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.code, "{'output': 1}");
    assert_eq!(changed.parties, ["carol"]);
    f.contracts.delete(&admin(), d.id).await.unwrap();
    assert!(matches!(
        f.contracts.get(&admin(), d.id).await,
        Err(ContractError::NotFound(_))
    ));
}

async fn deploying_numbers_the_versions_of_a_name_and_hashes_the_code(
    backend: kernel::db::Backend,
) {
    let Some(f) = fix(backend) else { return };
    let draft_one = f
        .contracts
        .create(&admin(), draft(COUNTER, json!({"n": 0})))
        .await
        .unwrap();
    assert_eq!(draft_one.status, ContractStatus::Draft);
    assert_eq!(
        (draft_one.version, draft_one.code_sha256.clone()),
        (None, None)
    );
    let one = f.contracts.deploy(&admin(), draft_one.id).await.unwrap();
    let two = deployed_counter(&f).await;
    assert_eq!(one.status, ContractStatus::Deployed);
    assert_eq!((one.version, two.version), (Some(1), Some(2)));
    let sha = one.code_sha256.unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(Some(sha), two.code_sha256);
    assert!(one.deployed_at.is_some());
}

async fn concurrent_executions_get_consecutive_seqs_and_a_valid_chain(
    backend: kernel::db::Backend,
) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    let runs = (0..20).map(|_| {
        let contracts = f.contracts.clone();
        tokio::spawn(async move { contracts.execute(&customer("alice"), c.id, json!({})).await })
    });
    let results = join_all(runs).await;
    let seqs: BTreeSet<i64> = results
        .into_iter()
        .map(|r| r.unwrap().unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect());
    let contract = f.contracts.get(&admin(), c.id).await.unwrap();
    assert_eq!(contract.state, json!({"n": 20}));
    let verified = f.contracts.verify_ledger(&admin(), c.id).await.unwrap();
    assert!(verified.valid, "{verified:?}");
    assert_eq!(verified.length, 20);
}

async fn executions_are_listed_in_ledger_order_page_by_page(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    for _ in 0..5 {
        f.contracts
            .execute(&admin(), c.id, json!({}))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut query = ExecutionQuery {
        limit: 2,
        after_seq: None,
    };
    loop {
        let page = f
            .contracts
            .list_executions(&admin(), c.id, query.clone())
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|e| e.seq));
        let Some(next) = page.next else { break };
        query = contract_api::ExecutionQuery::try_from(contract_api::ExecutionListParams {
            limit: Some(2),
            cursor: Some(next),
        })
        .unwrap();
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}

/// An event of a type only the tests publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct TestOrderPaid {
    order_id: String,
    total: Money,
}

impl Event for TestOrderPaid {
    const TYPE: &'static str = "test.order_paid";
    const SOURCE: &'static str = "test";
    const SUMMARY: &'static str = "A test order was paid.";
    fn subject(&self) -> String {
        self.order_id.clone()
    }
}

async fn publish_paid(f: &Fixture, order: &str, amount: i64) {
    let bus = f.bus.clone();
    let event = TestOrderPaid {
        order_id: order.into(),
        total: Money::new(amount, Currency::parse("EUR").unwrap()),
    };
    f.db.run(move |conn| bus.write(conn, |tx| tx.publish(&event).map(drop)))
        .await
        .unwrap();
}

fn loyalty() -> contract_api::NewContract {
    contract_api::NewContract {
        name: "loyalty".into(),
        parties: vec!["alice".into()],
        code: LOYALTY.into(),
        state: Some(json!({"points": 0})),
        triggers: Some(vec![TestOrderPaid::TYPE.into()]),
    }
}

async fn a_triggering_event_runs_the_contract_once_as_the_bus(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed(&f, loyalty()).await;
    publish_paid(&f, "o1", 3000).await;
    deliver(&f).await;
    // A second delivery of the same event (an operator's replay) has no effect.
    sql(
        &f,
        "UPDATE bus_deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL \
         WHERE subscriber = 'contract.triggers'",
    );
    deliver(&f).await;
    let page = f
        .contracts
        .list_executions(&admin(), c.id, ExecutionQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let run = &page.items[0];
    assert_eq!(run.caller.sub, "bus");
    assert_eq!(run.caller.role, Role::Service);
    assert_eq!(run.output, json!({"awarded": 30}));
    assert_eq!(
        run.input["total"],
        json!({"amount": 3000, "currency": "EUR"})
    );
    publish_paid(&f, "o2", 1250).await;
    deliver(&f).await;
    let contract = f.contracts.get(&admin(), c.id).await.unwrap();
    assert_eq!(contract.state, json!({"points": 42}));
    assert_eq!(contract.executions, 2);
    assert!(
        f.contracts
            .verify_ledger(&admin(), c.id)
            .await
            .unwrap()
            .valid
    );
}

async fn a_failing_triggered_run_is_skipped_and_recorded_nowhere(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let mut broken = loyalty();
    broken.code = "{'state': {'points': state.points + input.nothing}}".into();
    let broken = deployed(&f, broken).await;
    let good = deployed(&f, loyalty()).await;
    publish_paid(&f, "o1", 3000).await;
    deliver(&f).await;
    assert_eq!(
        f.contracts
            .get(&admin(), broken.id)
            .await
            .unwrap()
            .executions,
        0
    );
    assert_eq!(
        f.contracts.get(&admin(), good.id).await.unwrap().state,
        json!({"points": 30})
    );
    // The delivery is done, not failing for ever.
    assert_eq!(deliver_once(&f).await, 0);
}

async fn a_terminated_contract_is_no_longer_triggered(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed(&f, loyalty()).await;
    f.contracts.terminate(&admin(), c.id).await.unwrap();
    publish_paid(&f, "o1", 3000).await;
    deliver(&f).await;
    assert_eq!(f.contracts.get(&admin(), c.id).await.unwrap().executions, 0);
    // Nobody listens for the type any more: the event has no delivery at all.
    assert!(f.module.subscribers()[0].event_types().is_empty());
}

async fn events_carry_ids_seq_and_hash_but_no_data(backend: kernel::db::Backend) {
    let Some(f) = fix(backend) else { return };
    let c = deployed_counter(&f).await;
    let e = f
        .contracts
        .execute(&admin(), c.id, json!({"by": 7}))
        .await
        .unwrap();
    f.contracts.terminate(&admin(), c.id).await.unwrap();
    let events = kernel::testing::published_events(&f.db);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "contract.deployed",
            "contract.executed",
            "contract.terminated"
        ]
    );
    assert!(events.iter().all(|e| e.subject == c.id.to_string()));
    assert_eq!(
        events[1].data,
        json!({"contract_id": c.id, "execution_id": e.id, "seq": 1, "hash": e.hash})
    );
}
