//! The event bus against real databases: SQLite always, PostgreSQL when
//! `TESSERA_TEST_DATABASE_URL` is set. Subscribers write their effects to a table in the same
//! database, so "applied once" is counted, not assumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use diesel::{connection::SimpleConnection, prelude::*};
use kernel::{
    bus::{self, Bus, Envelope, Event, Subscriber, Tx},
    config::BusSettings,
    db::{Backend, Db},
    testing::TestDatabase,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

diesel::table! {
    effects (id) {
        id -> BigInt,
        subscriber -> Text,
        subject -> Text,
        n -> BigInt,
    }
}

/// The test event: `n` counts within a subject.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct Pinged {
    subject: String,
    n: i64,
}

// Through the kernel's re-export, as an implementation crate would write it.
kernel::event!(Pinged, "test.pinged", "test", "A test event.", |e| e
    .subject);

fn bus_settings() -> BusSettings {
    BusSettings {
        nats_url: None,
        subject_prefix: "tessera".into(),
        max_attempts: 3,
        backoff_base_ms: 1,
        backoff_max_ms: 4,
        poll_interval_ms: 60_000,
        lease_secs: 1,
        batch_size: 50,
    }
}

struct Env {
    db: Db,
    database: TestDatabase,
}

fn env(backend: Backend) -> Option<Env> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS]).unwrap();
    let ddl = match backend {
        Backend::Sqlite => {
            "CREATE TABLE effects (id INTEGER PRIMARY KEY AUTOINCREMENT, subscriber TEXT NOT NULL, subject TEXT NOT NULL, n BIGINT NOT NULL)"
        }
        Backend::Postgres => {
            "CREATE TABLE effects (id BIGSERIAL PRIMARY KEY, subscriber TEXT NOT NULL, subject TEXT NOT NULL, n BIGINT NOT NULL)"
        }
    };
    db.get().unwrap().batch_execute(ddl).unwrap();
    Some(Env { db, database })
}

impl Env {
    /// A second, independent pool on the same database: another process, as far as the
    /// database can tell.
    fn another_process(&self) -> Db {
        Db::connect(&self.database.settings()).unwrap()
    }

    fn effects(&self, subscriber: &str) -> Vec<(String, i64)> {
        effects::table
            .filter(effects::subscriber.eq(subscriber))
            .order_by(effects::id)
            .select((effects::subject, effects::n))
            .load(&mut *self.db.get().unwrap())
            .unwrap()
    }
}

/// Records each event it handles; fails the first `fail_first[n]` attempts at event `n`.
/// One unit publishing from several writes (on PostgreSQL its events are written together
/// just before it commits): they arrive once each, in the order published, after those of
/// earlier units; the events of a refused unit never arrive, even though the next unit may
/// run on the same thread.
async fn the_events_of_a_unit_arrive_in_publication_order_and_a_refused_units_never(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.ordered")).unwrap();
    // Refused and committed units in turn, so that some run on the thread a refused one
    // ran on.
    let mut expected = Vec::new();
    for (writes, commit) in (0..10).flat_map(|k| {
        expected.extend([k * 10 + 1, k * 10 + 2, k * 10 + 3]);
        [
            (vec![vec![900 + k], vec![950 + k]], false),
            (vec![vec![k * 10 + 1, k * 10 + 2], vec![k * 10 + 3]], true),
        ]
    }) {
        let (b, db) = (bus.clone(), env.db.clone());
        let outcome = env
            .db
            .unit(move || {
                let (b, db, writes) = (b.clone(), db.clone(), writes.clone());
                async move {
                    for events in writes {
                        let b = b.clone();
                        db.run(move |conn| {
                            b.write(conn, |tx| {
                                for n in &events {
                                    tx.publish(&Pinged {
                                        subject: "unit".into(),
                                        n: *n,
                                    })?;
                                }
                                Ok::<_, anyhow::Error>(())
                            })
                        })
                        .await?;
                    }
                    if commit {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!("refused after publishing"))
                    }
                }
            })
            .await;
        assert_eq!(outcome.is_ok(), commit);
    }
    drain(&bus, &env.db);
    let seen: Vec<i64> = env
        .effects("test.ordered")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(seen, expected);
}

struct Recorder {
    name: &'static str,
    fail_first: Mutex<HashMap<i64, u32>>,
    always_fail: Mutex<bool>,
}

impl Recorder {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            fail_first: Mutex::new(HashMap::new()),
            always_fail: Mutex::new(false),
        })
    }
}

impl Subscriber for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn event_types(&self) -> Vec<String> {
        vec![Pinged::TYPE.into()]
    }

    fn handle(&self, tx: &mut Tx<'_>, envelope: &Envelope) -> anyhow::Result<()> {
        let event: Pinged = envelope.decode()?;
        // The effect is written before failing, to prove a failure rolls it back.
        diesel::insert_into(effects::table)
            .values((
                effects::subscriber.eq(self.name),
                effects::subject.eq(&event.subject),
                effects::n.eq(event.n),
            ))
            .execute(tx.conn())?;
        if *self.always_fail.lock().unwrap() {
            anyhow::bail!("{} is broken", self.name);
        }
        let mut fail_first = self.fail_first.lock().unwrap();
        if let Some(left) = fail_first.get_mut(&event.n).filter(|left| **left > 0) {
            *left -= 1;
            anyhow::bail!("transient failure at {}", event.n);
        }
        Ok(())
    }
}

fn publish(bus: &Bus, db: &Db, subject: &str, n: i64) {
    let mut conn = db.get().unwrap();
    bus.write(&mut conn, |tx| {
        tx.publish(&Pinged {
            subject: subject.into(),
            n,
        })
        .map(|_| ())
    })
    .unwrap();
}

/// Drives the relay step by step until nothing is due, sleeping past backoffs.
fn drain(bus: &Bus, db: &Db) {
    drain_as(bus, db, "test-relay");
}

/// [`drain`] as the relay named `owner`.
fn drain_as(bus: &Bus, db: &Db, owner: &str) {
    let mut conn = db.get().unwrap();
    let mut idle = 0;
    while idle < 5 {
        if bus.relay_batch(&mut conn, owner).unwrap() == 0 {
            idle += 1;
            std::thread::sleep(Duration::from_millis(10));
        } else {
            idle = 0;
        }
    }
}

fn statuses(db: &Db) -> Vec<(String, String, i32)> {
    use diesel::sql_types::{Integer, Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        subscriber: String,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    diesel::sql_query(
        "SELECT subscriber, status, attempts FROM bus_deliveries ORDER BY seq, subscriber",
    )
    .load::<Row>(&mut *db.get().unwrap())
    .unwrap()
    .into_iter()
    .map(|r| (r.subscriber, r.status, r.attempts))
    .collect()
}

kernel::on_both_backends!(
    with env:
    a_rolled_back_transaction_publishes_nothing,
    a_subscriber_that_fails_twice_then_succeeds_is_applied_once,
    a_subscriber_that_always_fails_ends_failed_and_a_replay_succeeds,
    one_failing_subscriber_neither_blocks_nor_repeats_the_others,
    events_of_one_subject_arrive_in_order,
    a_redelivered_event_has_no_second_effect,
    deliveries_claimed_by_a_crashed_relay_are_taken_over,
    two_relays_on_one_database_deliver_each_event_once,
    a_commit_wakes_the_relay,
    an_event_published_in_a_unit_of_work_is_delivered_only_if_the_unit_commits,
    the_events_of_a_unit_arrive_in_publication_order_and_a_refused_units_never,
    a_batch_where_one_handler_fails_commits_the_others_and_retries_only_that_one,
    two_running_relays_drain_one_backlog_once_each_and_in_subject_order,
    a_delivery_leased_by_another_relay_holds_back_its_subject_only,
);

async fn a_rolled_back_transaction_publishes_nothing(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let recorder = Recorder::new("test.recorder");
    bus.subscribe(recorder).unwrap();
    let mut conn = env.db.get().unwrap();
    let result: anyhow::Result<()> = bus.write(&mut conn, |tx| {
        tx.publish(&Pinged {
            subject: "a".into(),
            n: 1,
        })?;
        anyhow::bail!("the state change failed")
    });
    assert!(result.is_err());
    drop(conn);
    drain(&bus, &env.db);
    assert!(statuses(&env.db).is_empty());
    assert!(env.effects("test.recorder").is_empty());
}

async fn a_subscriber_that_fails_twice_then_succeeds_is_applied_once(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let recorder = Recorder::new("test.flaky");
    recorder.fail_first.lock().unwrap().insert(1, 2);
    bus.subscribe(recorder).unwrap();
    publish(&bus, &env.db, "a", 1);
    drain(&bus, &env.db);
    assert_eq!(env.effects("test.flaky"), [("a".to_owned(), 1)]);
    assert_eq!(
        statuses(&env.db),
        [("test.flaky".into(), "delivered".into(), 3)]
    );
}

async fn a_subscriber_that_always_fails_ends_failed_and_a_replay_succeeds(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let recorder = Recorder::new("test.broken");
    *recorder.always_fail.lock().unwrap() = true;
    bus.subscribe(recorder.clone()).unwrap();
    publish(&bus, &env.db, "a", 7);
    drain(&bus, &env.db);
    assert_eq!(
        statuses(&env.db),
        [("test.broken".into(), "failed".into(), 3)]
    );
    assert!(
        env.effects("test.broken").is_empty(),
        "failed attempts left no effect"
    );

    // The operator fixes the subscriber and replays the dead letter.
    *recorder.always_fail.lock().unwrap() = false;
    let mut conn = env.db.get().unwrap();
    let replayed = diesel::sql_query(
        "UPDATE bus_deliveries SET status = 'pending', attempts = 0 WHERE status = 'failed'",
    )
    .execute(&mut *conn)
    .unwrap();
    assert_eq!(replayed, 1);
    drop(conn);
    drain(&bus, &env.db);
    assert_eq!(env.effects("test.broken"), [("a".to_owned(), 7)]);
    assert_eq!(
        statuses(&env.db),
        [("test.broken".into(), "delivered".into(), 1)]
    );
}

async fn one_failing_subscriber_neither_blocks_nor_repeats_the_others(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let good = Recorder::new("test.good");
    let bad = Recorder::new("test.bad");
    *bad.always_fail.lock().unwrap() = true;
    bus.subscribe(good).unwrap();
    bus.subscribe(bad).unwrap();
    for n in 1..=3 {
        publish(&bus, &env.db, &format!("s{n}"), n);
    }
    drain(&bus, &env.db);
    assert_eq!(env.effects("test.good").len(), 3, "each event once");
    let s = statuses(&env.db);
    let of = |name: &str| -> Vec<(String, i32)> {
        s.iter()
            .filter(|(sub, ..)| sub == name)
            .map(|(_, st, a)| (st.clone(), *a))
            .collect()
    };
    assert_eq!(of("test.good"), vec![("delivered".to_owned(), 1); 3]);
    let bad = of("test.bad");
    assert_eq!(
        bad.len(),
        3,
        "one delivery per event to the failing subscriber"
    );
    assert!(bad.iter().all(|(st, _)| st == "failed"), "{bad:?}");
}

async fn events_of_one_subject_arrive_in_order(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let recorder = Recorder::new("test.ordered");
    // Event 3 of each subject fails twice before it succeeds; 4 and 5 must wait for it.
    recorder.fail_first.lock().unwrap().insert(3, 2);
    bus.subscribe(recorder).unwrap();
    for n in 1..=5 {
        publish(&bus, &env.db, "a", n);
        publish(&bus, &env.db, "b", n);
    }
    drain(&bus, &env.db);
    let handled = env.effects("test.ordered");
    for subject in ["a", "b"] {
        let order: Vec<i64> = handled
            .iter()
            .filter(|(s, _)| s == subject)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(order, [1, 2, 3, 4, 5], "subject {subject}");
    }
}

async fn a_redelivered_event_has_no_second_effect(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.once")).unwrap();
    publish(&bus, &env.db, "a", 1);
    drain(&bus, &env.db);
    // As if the record of the delivery were lost while the handling committed (or the event
    // came again from a broker): it is delivered again…
    diesel::sql_query("UPDATE bus_deliveries SET status = 'pending'")
        .execute(&mut *env.db.get().unwrap())
        .unwrap();
    drain(&bus, &env.db);
    // …and the inbox keeps the effect single.
    assert_eq!(env.effects("test.once").len(), 1);
    assert_eq!(statuses(&env.db)[0].1, "delivered");
}

async fn deliveries_claimed_by_a_crashed_relay_are_taken_over(env: Env) {
    // Process A publishes and its relay claims the batch, then A dies before delivering.
    let bus_a = Bus::new(env.db.clone(), bus_settings());
    bus_a.subscribe(Recorder::new("test.survivor")).unwrap();
    for n in 1..=10 {
        publish(&bus_a, &env.db, &format!("s{n}"), n);
    }
    let claimed = bus_a
        .claim(&mut env.db.get().unwrap(), "relay-of-a")
        .unwrap();
    assert_eq!(claimed.len(), 10);
    drop(bus_a);

    // Process B starts on the same database with the same subscriber.
    let db_b = env.another_process();
    let bus_b = Bus::new(db_b.clone(), bus_settings());
    bus_b.subscribe(Recorder::new("test.survivor")).unwrap();
    assert!(
        bus_b
            .claim(&mut db_b.get().unwrap(), "relay-of-b")
            .unwrap()
            .is_empty(),
        "A's leases hold"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drain(&bus_b, &db_b);
    let mut handled: Vec<i64> = env
        .effects("test.survivor")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    handled.sort_unstable();
    assert_eq!(
        handled,
        (1..=10).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
}

async fn two_relays_on_one_database_deliver_each_event_once(env: Env) {
    let db_a = env.db.clone();
    let db_b = env.another_process();
    let bus_a = Bus::new(db_a.clone(), bus_settings());
    let bus_b = Bus::new(db_b.clone(), bus_settings());
    for bus in [&bus_a, &bus_b] {
        bus.subscribe(Recorder::new("test.shared")).unwrap();
    }
    for n in 1..=200 {
        publish(
            if n % 2 == 0 { &bus_a } else { &bus_b },
            &env.db,
            &format!("s{}", n % 17),
            n,
        );
    }
    let (a, b) = (bus_a.clone(), bus_b.clone());
    let relay_a = tokio::task::spawn_blocking(move || drain_as(&a, &db_a, "relay-a"));
    let relay_b = tokio::task::spawn_blocking(move || drain_as(&b, &db_b, "relay-b"));
    relay_a.await.unwrap();
    relay_b.await.unwrap();
    assert_each_once_in_subject_order(&env, "test.shared", 200);
}

async fn a_commit_wakes_the_relay(env: Env) {
    // The poll interval is a minute: only the commit's wake-up can deliver in time.
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.prompt")).unwrap();
    assert!(!bus.relay_alive(), "no relay yet");
    let relay = bus.start_relay();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(bus.relay_alive());
    let (b, db) = (bus.clone(), env.db.clone());
    tokio::task::spawn_blocking(move || publish(&b, &db, "a", 1))
        .await
        .unwrap();
    let mut delivered = false;
    for _ in 0..100 {
        if env.effects("test.prompt").len() == 1 {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await;
    assert!(
        delivered,
        "delivered within 5 s of the commit, long before the next poll"
    );
}

/// An event published inside a unit of work (an order and its reservation committed at once)
/// is the unit's: delivered once the unit commits (the relay polls only once a minute here,
/// so the commit must wake it), and never when the unit rolls back, although the publishing
/// write itself had returned.
async fn an_event_published_in_a_unit_of_work_is_delivered_only_if_the_unit_commits(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.unit")).unwrap();
    let relay = bus.start_relay();
    for (n, commit) in [(1, false), (2, true)] {
        let (b, db) = (bus.clone(), env.db.clone());
        let outcome = env
            .db
            .unit(move || {
                let (b, db) = (b.clone(), db.clone());
                async move {
                    db.run(move |conn| {
                        b.write(conn, |tx| {
                            tx.publish(&Pinged {
                                subject: "unit".into(),
                                n,
                            })
                            .map(|_| ())
                        })
                    })
                    .await?;
                    // The rest of the unit's work takes a while; the relay must not look yet.
                    std::thread::sleep(Duration::from_millis(300));
                    if commit {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!("the order was refused after all"))
                    }
                }
            })
            .await;
        assert_eq!(outcome.is_ok(), commit);
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = env.effects("test.unit");
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.stop().await;
    assert_eq!(
        seen,
        vec![("unit".to_owned(), 2)],
        "only the committed unit's event, delivered within 5 s of its commit"
    );
}

async fn a_batch_where_one_handler_fails_commits_the_others_and_retries_only_that_one(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    let recorder = Recorder::new("test.batch");
    // The handler fails once at event 3, then succeeds.
    recorder.fail_first.lock().unwrap().insert(3, 1);
    bus.subscribe(recorder).unwrap();
    for n in 1..=5 {
        publish(&bus, &env.db, &format!("s{n}"), n);
    }
    // One relay turn claims all five in one batch.
    let mut conn = env.db.get().unwrap();
    assert_eq!(bus.relay_batch(&mut conn, "test-relay").unwrap(), 5);
    drop(conn);
    let mut handled: Vec<i64> = env
        .effects("test.batch")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    handled.sort_unstable();
    assert_eq!(handled, [1, 2, 4, 5], "the other four committed, once each");
    let after_one_turn = statuses(&env.db);
    let attempts: Vec<(&str, i32)> = after_one_turn
        .iter()
        .map(|(_, status, attempts)| (status.as_str(), *attempts))
        .collect();
    assert_eq!(
        attempts,
        [
            ("delivered", 1),
            ("delivered", 1),
            ("pending", 1),
            ("delivered", 1),
            ("delivered", 1)
        ],
        "only event 3 waits for a retry, with its failed attempt counted"
    );
    assert_eq!(inbox_rows(&env.db), 4, "no inbox record for the failed one");

    drain(&bus, &env.db);
    handled = env
        .effects("test.batch")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    handled.sort_unstable();
    assert_eq!(handled, [1, 2, 3, 4, 5]);
    assert_eq!(
        statuses(&env.db)[2],
        ("test.batch".into(), "delivered".into(), 2)
    );
    assert_eq!(inbox_rows(&env.db), 5);
}

async fn two_running_relays_drain_one_backlog_once_each_and_in_subject_order(env: Env) {
    const EVENTS: i64 = 1_500;
    const SUBJECTS: i64 = 40;
    // Small batches and long leases: the relays interleave a lot, and nothing is taken over.
    let settings = BusSettings {
        batch_size: 16,
        lease_secs: 60,
        poll_interval_ms: 50,
        ..bus_settings()
    };
    let db_b = env.another_process();
    let bus_a = Bus::new(env.db.clone(), settings.clone());
    let bus_b = Bus::new(db_b.clone(), settings);
    for bus in [&bus_a, &bus_b] {
        bus.subscribe(Recorder::new("test.backlog")).unwrap();
    }
    let (a, db) = (bus_a.clone(), env.db.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().unwrap();
        for chunk in 0..EVENTS / 50 {
            a.write(&mut conn, |tx| {
                for n in chunk * 50 + 1..=chunk * 50 + 50 {
                    tx.publish(&Pinged {
                        subject: format!("s{}", n % SUBJECTS),
                        n,
                    })?;
                }
                Ok::<_, anyhow::Error>(())
            })
            .unwrap();
        }
    })
    .await
    .unwrap();
    let (relay_a, relay_b) = (bus_a.start_relay(), bus_b.start_relay());
    for _ in 0..1_200 {
        if inbox_rows(&env.db) >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay_a.stop().await;
    relay_b.stop().await;
    assert_each_once_in_subject_order(&env, "test.backlog", EVENTS);
    assert_eq!(inbox_rows(&env.db), EVENTS);
}

/// A delivery another relay has leased is not taken, the later events of its subject wait for
/// it (however many batches go by), other subjects go on; once the lease runs out, the rest
/// arrive in order, each at its first attempt.
async fn a_delivery_leased_by_another_relay_holds_back_its_subject_only(env: Env) {
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.leased")).unwrap();
    for n in 1..=3 {
        publish(&bus, &env.db, "a", n);
    }
    publish(&bus, &env.db, "b", 4);
    let lease = |until: &str| {
        env.db
            .get()
            .unwrap()
            .batch_execute(&format!(
                "UPDATE bus_deliveries SET lease_owner = 'other-relay', lease_until = '{until}' \
                 WHERE seq = (SELECT MIN(seq) FROM bus_deliveries)"
            ))
            .unwrap();
    };
    lease("2999-01-01 00:00:00");
    let mut conn = env.db.get().unwrap();
    for _ in 0..3 {
        bus.relay_batch(&mut conn, "relay").unwrap();
    }
    drop(conn);
    assert_eq!(
        env.effects("test.leased"),
        [("b".to_owned(), 4)],
        "only the other subject went"
    );
    // The other relay died long ago: its lease has run out.
    lease("2000-01-01 00:00:00");
    drain(&bus, &env.db);
    assert_held_back_subject_arrived_in_order(&env, "test.leased");
}

/// On PostgreSQL, a commit in one process wakes the relay of another at once: with a poll
/// of a minute, only the notification can explain a delivery within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_in_another_process_wakes_on_the_commit_not_its_poll() {
    let Some(env) = env(Backend::Postgres) else {
        eprintln!("skipped: TESSERA_TEST_DATABASE_URL is not set");
        return;
    };
    // Process A publishes and runs no relay; process B runs the relay, polling once a minute.
    let bus_a = Bus::new(env.db.clone(), bus_settings());
    bus_a.subscribe(Recorder::new("test.listener")).unwrap();
    let db_b = env.another_process();
    let bus_b = Bus::new(db_b, bus_settings());
    bus_b.subscribe(Recorder::new("test.listener")).unwrap();
    let relay = bus_b.start_relay();
    // B's relay has taken its first (empty) turn and waits for the poll or a wake-up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 1..=3 {
        let (a, db) = (bus_a.clone(), env.db.clone());
        tokio::task::spawn_blocking(move || publish(&a, &db, "a", n))
            .await
            .unwrap();
        let mut delivered = false;
        for _ in 0..200 {
            if env.effects("test.listener").len() == usize::try_from(n).unwrap() {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            delivered,
            "event {n} delivered by the other process's relay within 10 s, long before its poll"
        );
    }
    relay.stop().await;
    assert_eq!(
        env.effects("test.listener"),
        [
            ("a".to_owned(), 1),
            ("a".to_owned(), 2),
            ("a".to_owned(), 3)
        ]
    );
}

/// On PostgreSQL a relay holds its batch by row locks: a delivery locked by another relay's
/// transaction in flight is not taken, later events of its subject wait for it, and other
/// subjects go on; once the other relay gives up, everything arrives, in order.
#[tokio::test]
async fn on_postgresql_a_delivery_locked_by_another_relay_is_neither_taken_nor_overtaken() {
    let Some(env) = env(Backend::Postgres) else {
        eprintln!("skipped: TESSERA_TEST_DATABASE_URL is not set");
        return;
    };
    let bus = Bus::new(env.db.clone(), bus_settings());
    bus.subscribe(Recorder::new("test.locked")).unwrap();
    for n in 1..=3 {
        publish(&bus, &env.db, "a", n);
    }
    publish(&bus, &env.db, "b", 4);
    // Another process's relay has event 1 in its batch, its transaction still open.
    let other = env.another_process();
    let mut held = other.get().unwrap();
    held.batch_execute(
        "BEGIN; SELECT 1 FROM bus_deliveries \
         WHERE seq = (SELECT MIN(seq) FROM bus_deliveries) FOR UPDATE",
    )
    .unwrap();
    let mut conn = env.db.get().unwrap();
    for _ in 0..3 {
        bus.relay_batch(&mut conn, "relay").unwrap();
    }
    assert_eq!(
        env.effects("test.locked"),
        [("b".to_owned(), 4)],
        "only the other subject went"
    );
    // The other relay rolls back (it died, say): its delivery is free at once.
    held.batch_execute("ROLLBACK").unwrap();
    drain(&bus, &env.db);
    assert_held_back_subject_arrived_in_order(&env, "test.locked");
}

/// After a held-back delivery of subject `a` went: `a`'s events 1 to 3 took effect in order,
/// and every delivery is recorded delivered at its first attempt.
fn assert_held_back_subject_arrived_in_order(env: &Env, subscriber: &str) {
    let a: Vec<i64> = env
        .effects(subscriber)
        .into_iter()
        .filter(|(subject, _)| subject == "a")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(a, [1, 2, 3]);
    assert!(
        statuses(&env.db)
            .iter()
            .all(|(_, status, attempts)| status == "delivered" && *attempts == 1)
    );
}

/// Events `1..=events` each took effect once for `subscriber`, every subject's in order, and
/// every delivery is recorded delivered at its first attempt.
fn assert_each_once_in_subject_order(env: &Env, subscriber: &str, events: i64) {
    let effects = env.effects(subscriber);
    let mut by_subject: HashMap<&str, Vec<i64>> = HashMap::new();
    for (subject, n) in &effects {
        by_subject.entry(subject).or_default().push(*n);
    }
    for (subject, order) in by_subject {
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{subject} in order: {order:?}"
        );
    }
    let mut handled: Vec<i64> = effects.into_iter().map(|(_, n)| n).collect();
    handled.sort_unstable();
    assert_eq!(handled, (1..=events).collect::<Vec<_>>(), "each event once");
    assert!(
        statuses(&env.db)
            .iter()
            .all(|(_, status, attempts)| status == "delivered" && *attempts == 1)
    );
}

fn inbox_rows(db: &Db) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT COUNT(*) AS n FROM bus_inbox")
        .get_result::<Count>(&mut *db.get().unwrap())
        .unwrap()
        .n
}

#[test]
fn the_typed_helper_subscribes_to_its_event_type_only() {
    let subscriber = bus::on::<Pinged, _>("test.typed", |_tx, _event, _envelope| Ok(()));
    assert!(subscriber.accepts("test.pinged"));
    assert!(!subscriber.accepts("test.other"));
}
