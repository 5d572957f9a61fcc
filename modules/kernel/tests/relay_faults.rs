//! The relay against faults of what it talks to: a broker that hangs or goes away (a
//! `nats-server` of the test's own, when `TESSERA_TEST_NATS_URL` says NATS is available), and
//! PostgreSQL conflicts inside a handler (when `TESSERA_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::{connection::SimpleConnection, prelude::*, sql_types::Text};
use kernel::{
    bus::{self, Bus, Envelope, Event, Subscriber, Tx, nats::Nats},
    config::BusSettings,
    db::{Backend, Db},
    testing::{NatsServer, TestDatabase},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct Knocked {
    n: i64,
}

impl Event for Knocked {
    const TYPE: &'static str = "test.knocked";
    const SOURCE: &'static str = "test";
    const SUMMARY: &'static str = "A test event.";
    fn subject(&self) -> String {
        format!("door-{}", self.n)
    }
}

fn settings() -> BusSettings {
    BusSettings {
        nats_url: None,
        subject_prefix: "faults".into(),
        // Two counted failures would dead-letter: a transport failure must never count.
        max_attempts: 2,
        backoff_base_ms: 10,
        backoff_max_ms: 100,
        poll_interval_ms: 50,
        lease_secs: 30,
        batch_size: 50,
    }
}

fn publish(bus: &Bus, db: &Db, n: i64) {
    let mut conn = db.get().unwrap();
    bus.write(&mut conn, |tx| tx.publish(&Knocked { n }).map(|_| ()))
        .unwrap();
}

#[derive(Debug, QueryableByName, PartialEq, Eq, Clone)]
struct Row {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    lease_owner: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    last_error: Option<String>,
}

fn deliveries(db: &Db) -> Vec<Row> {
    diesel::sql_query(
        "SELECT status, attempts, lease_owner, last_error FROM bus_deliveries ORDER BY seq",
    )
    .load(&mut *db.get().unwrap())
    .unwrap()
}

async fn within(bound: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the delivery waits for the broker, uncounted; panics on a dead letter.
fn waits_for_broker(row: &Row) -> bool {
    assert_ne!(
        row.status, "failed",
        "a transport failure dead-lettered: {row:?}"
    );
    row.status == "pending"
        && row.attempts == 0
        && row
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("waiting for the broker"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_absent_broker_holds_no_transaction_and_dead_letters_nothing() {
    if std::env::var("TESSERA_TEST_NATS_URL").is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: broker fault test SKIPPED: TESSERA_TEST_NATS_URL is not set"
        );
        return;
    }
    let mut server = NatsServer::start().unwrap();
    let database = TestDatabase::sqlite();
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), settings());
    let nats = Nats::connect(&server.url(), "faults", Duration::from_secs(1))
        .await
        .unwrap();
    bus.subscribe(nats.publisher()).unwrap();
    let relay = bus.start_relay();
    publish(&bus, &db, 1);
    within(Duration::from_secs(10), "event 1 reaches JetStream", || {
        deliveries(&db)[0].status == "delivered"
    })
    .await;
    assert_eq!(bus.broker_health().unwrap().status, "ok");

    // A hung broker: connected, but it answers nothing. While the relay waits for the ack,
    // another process writes; it would wait for the relay's transaction (and give up after
    // its one-second busy timeout) if the relay held one across the publish.
    server.freeze(true).unwrap();
    publish(&bus, &db, 2);
    within(Duration::from_secs(10), "the relay takes event 2", || {
        deliveries(&db)[1].lease_owner.is_some()
    })
    .await;
    let mut other = database.settings();
    other.sqlite_busy_timeout_ms = 1000;
    let other = Db::connect(&other).unwrap();
    other
        .get()
        .unwrap()
        .batch_execute(
            "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS other_writes (x INTEGER); \
             INSERT INTO other_writes VALUES (1); COMMIT;",
        )
        .expect("another writer commits while a publish is pending");
    within(
        Duration::from_secs(15),
        "event 2 waits for the broker",
        || waits_for_broker(&deliveries(&db)[1]),
    )
    .await;
    assert_eq!(bus.broker_health().unwrap().status, "degraded");

    // An absent broker: the events wait, uncounted, however long it stays away.
    server.freeze(false).unwrap();
    server.kill();
    publish(&bus, &db, 3);
    publish(&bus, &db, 4);
    within(
        Duration::from_secs(15),
        "events 3 and 4 wait for the broker",
        || deliveries(&db)[2..].iter().all(waits_for_broker),
    )
    .await;
    let health = bus.broker_health().unwrap();
    assert_eq!(health.status, "degraded");
    assert!(health.last_error.is_some(), "{health:?}");

    // Back: everything flows without a restart, each event in JetStream once.
    server.resume().unwrap();
    within(Duration::from_secs(30), "every event is delivered", || {
        deliveries(&db).iter().all(|d| d.status == "delivered")
    })
    .await;
    let rows = deliveries(&db);
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|d| d.attempts == 1 && d.last_error.is_none()),
        "only the successful hand-over counts as an attempt: {rows:?}"
    );
    within(
        Duration::from_secs(10),
        "readiness says the broker is back",
        || bus.broker_health().unwrap().status == "ok",
    )
    .await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("FAULTS")
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 4);
    relay.stop().await;
}

/// Fails its first delivery with a real PostgreSQL error of the given SQLSTATE.
struct Conflicted {
    sqlstate: &'static str,
    calls: AtomicU32,
}

impl Subscriber for Conflicted {
    fn name(&self) -> &str {
        "test.conflicted"
    }

    fn event_types(&self) -> Vec<String> {
        vec![Knocked::TYPE.into()]
    }

    fn handle(&self, tx: &mut Tx<'_>, _envelope: &Envelope) -> anyhow::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let raise = format!(
                "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '{}'; END $$",
                self.sqlstate
            );
            diesel::sql_query(raise).execute(tx.conn())?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_deadlock_or_serialization_failure_in_a_handler_is_retried_without_an_attempt() {
    for sqlstate in ["40P01", "40001"] {
        let Some(database) = TestDatabase::new(Backend::Postgres) else {
            return;
        };
        let db = Db::connect(&database.settings()).unwrap();
        db.migrate(&[bus::MIGRATIONS]).unwrap();
        let bus = Bus::new(db.clone(), settings());
        let subscriber = Arc::new(Conflicted {
            sqlstate,
            calls: AtomicU32::new(0),
        });
        bus.subscribe(subscriber.clone()).unwrap();
        publish(&bus, &db, 1);
        let relay = bus.start_relay();
        within(Duration::from_secs(10), "the event is delivered", || {
            deliveries(&db)[0].status == "delivered"
        })
        .await;
        relay.stop().await;
        assert_eq!(subscriber.calls.load(Ordering::SeqCst), 2, "{sqlstate}");
        assert_eq!(
            deliveries(&db)[0].attempts,
            1,
            "{sqlstate}: the conflict is not counted as a failed attempt"
        );
    }
}
