//! What the contract tests share: a fixture with its own database, a clock the test can
//! stop, principals and helpers.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use contract::{ContractModule, ContractSettings};
use contract_api::{Contract, ContractId, ContractService, NewContract};
use diesel::RunQueryDsl;
use kernel::{
    auth::{Principal, Role},
    bus::{self, Bus},
    config::{AppEnv, Settings},
    db::{Backend, Db},
    module::{Context, Module},
    testing::TestDatabase,
};
use serde_json::{Value, json};

/// A counter: adds `input.by` (or 1) to `state.n` and says what it counted to.
pub const COUNTER: &str = r#"{
  "state": {"n": state.n + (has(input.by) ? input.by : 1)},
  "output": {"n": state.n + (has(input.by) ? input.by : 1), "at": now, "by": caller.sub}
}"#;

/// The loyalty example: a point per 100 cents of an order's total.
pub const LOYALTY: &str = r#"{"state": {"points": state.points + int(input.total.amount) / 100}, "output": {"awarded": int(input.total.amount) / 100}}"#;

pub struct Fixture {
    pub contracts: Arc<dyn ContractService>,
    pub module: ContractModule,
    pub bus: Bus,
    pub db: Db,
    /// `Some` stops the clock at that time.
    pub now: Arc<Mutex<Option<DateTime<Utc>>>>,
    pub _database: TestDatabase,
}

pub fn fixture(backend: Backend) -> Option<Fixture> {
    fixture_with(backend, ContractSettings::default())
}

pub fn fixture_with(backend: Backend, settings: ContractSettings) -> Option<Fixture> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS, contract::MIGRATIONS])
        .unwrap();
    let mut bus_settings = Settings::defaults(AppEnv::Test).unwrap().bus;
    bus_settings.backoff_base_ms = 1;
    bus_settings.backoff_max_ms = 1;
    let bus = Bus::new(db.clone(), bus_settings);
    let now: Arc<Mutex<Option<DateTime<Utc>>>> = Arc::default();
    let clock = now.clone();
    let context = Context {
        bus: bus.clone(),
        settings,
    };
    let module = ContractModule::new(context, ())
        .unwrap()
        .with_clock(move || clock.lock().unwrap().unwrap_or_else(Utc::now));
    for subscriber in module.subscribers() {
        bus.subscribe(subscriber).unwrap();
    }
    Some(Fixture {
        contracts: module.service(),
        module,
        bus,
        db,
        now,
        _database: database,
    })
}

pub fn principal(sub: &str, role: Role) -> Principal {
    Principal {
        sub: sub.into(),
        role,
    }
}

pub fn admin() -> Principal {
    principal("root", Role::Admin)
}

pub fn service() -> Principal {
    principal("billing", Role::Service)
}

pub fn customer(sub: &str) -> Principal {
    principal(sub, Role::Customer)
}

pub fn clinician() -> Principal {
    principal("dr-who", Role::Clinician)
}

pub fn draft(code: &str, state: Value) -> NewContract {
    NewContract {
        name: "counter".into(),
        parties: vec!["alice".into(), "shop".into()],
        code: code.into(),
        state: Some(state),
        triggers: None,
    }
}

/// A deployed counter starting at 0, with alice and shop as parties.
pub async fn deployed_counter(f: &Fixture) -> Contract {
    deployed(f, draft(COUNTER, json!({"n": 0}))).await
}

pub async fn deployed(f: &Fixture, draft: NewContract) -> Contract {
    let contract = f.contracts.create(&admin(), draft).await.unwrap();
    f.contracts.deploy(&admin(), contract.id).await.unwrap()
}

/// Runs `sql` (written for both backends) on the fixture's database.
pub fn sql(f: &Fixture, sql: &str) -> usize {
    let mut conn = f.db.get().unwrap();
    diesel::sql_query(sql).execute(&mut *conn).unwrap()
}

/// Sets one column of one ledger entry behind the module's back.
pub fn tamper(f: &Fixture, id: ContractId, seq: i64, column: &str, value: &str) {
    let changed = sql(
        f,
        &format!(
            "UPDATE contract_executions SET {column} = {value} \
             WHERE contract_id = '{id}' AND seq = {seq}"
        ),
    );
    assert_eq!(changed, 1);
}

/// One turn of the relay, on the blocking pool as the real one does.
pub async fn deliver_once(f: &Fixture) -> usize {
    kernel::testing::deliver_once(&f.bus).await
}

/// Runs the relay until nothing is due.
pub async fn deliver(f: &Fixture) {
    kernel::testing::deliver(&f.bus).await;
}
