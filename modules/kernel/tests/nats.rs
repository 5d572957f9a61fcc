//! Events between two processes over the real NATS JetStream named by
//! `TESSERA_TEST_NATS_URL` (skipped, with a notice, when it is not set). Each "process" has
//! its own SQLite database and its own bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use kernel::{
    bus::{self, Bus, Event, nats::Nats},
    config::{AppEnv, Settings},
    db::Db,
    testing::TestDatabase,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct Rang {
    n: i64,
}

impl Event for Rang {
    const TYPE: &'static str = "test.rang";
    const SOURCE: &'static str = "test";
    const SUMMARY: &'static str = "A test event.";
    fn subject(&self) -> String {
        "bell".into()
    }
}

fn nats_url() -> Option<String> {
    let url = std::env::var("TESSERA_TEST_NATS_URL").ok();
    if url.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: NATS tests SKIPPED: TESSERA_TEST_NATS_URL is not set (e.g. nats://127.0.0.1:4222)"
        );
    }
    url
}

struct Process {
    bus: Bus,
    db: Db,
    _database: TestDatabase,
}

fn process() -> Process {
    let database = TestDatabase::sqlite();
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS]).unwrap();
    let mut settings = Settings::defaults(AppEnv::Test).unwrap().bus;
    settings.poll_interval_ms = 50;
    settings.backoff_base_ms = 10;
    settings.backoff_max_ms = 50;
    Process {
        bus: Bus::new(db.clone(), settings),
        db,
        _database: database,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_crosses_processes_once_even_when_delivered_twice() {
    let Some(url) = nats_url() else { return };
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let timeout = Duration::from_secs(3);

    // Process A publishes through its outbox; its relay hands the event to JetStream.
    let a = process();
    let nats_a = Nats::connect(&url, &prefix, timeout).await.unwrap();
    a.bus.subscribe(nats_a.publisher()).unwrap();
    let relay = a.bus.start_relay();

    // Process B consumes with a subscriber that fails once, then counts.
    let b = process();
    let nats_b = Nats::connect(&url, &prefix, timeout).await.unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (h, f) = (handled.clone(), failures.clone());
    let subscriber = bus::on::<Rang, _>("test.bell_ringer", move |_tx, event, _| {
        if f.fetch_add(1, Ordering::SeqCst) == 0 {
            anyhow::bail!("first attempt fails");
        }
        assert_eq!(event.n, 7);
        h.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumers = nats_b
        .consume(&b.bus, subscriber.clone(), stopped)
        .await
        .unwrap();

    let (bus_a, db_a) = (a.bus.clone(), a.db.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = db_a.get().unwrap();
        bus_a
            .write(&mut conn, |tx| tx.publish(&Rang { n: 7 }).map(|_| ()))
            .unwrap();
    })
    .await
    .unwrap();

    for _ in 0..100 {
        if handled.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(handled.load(Ordering::SeqCst), 1, "handled after one retry");
    assert_eq!(failures.load(Ordering::SeqCst), 2);

    // The same envelope again (JetStream redelivers after a crash before the ack): the inbox
    // of process B keeps the effect single.
    let envelope = kernel::testing::published_events(&a.db).remove(0);
    let (bus_b, db_b) = (b.bus.clone(), b.db.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = db_b.get().unwrap();
        bus_b
            .handle_external(&mut conn, subscriber.as_ref(), &envelope)
            .unwrap();
    })
    .await
    .unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    let _ = stop.send(true);
    for consumer in consumers {
        let _ = consumer.await;
    }
    relay.stop().await;
    nats_a.delete_stream().await.unwrap();
}
