//! Event bus throughput and latency: `cargo bench -p kernel --bench bus_throughput`.
//!
//! Prints, for SQLite and (when `TESSERA_TEST_DATABASE_URL` is set) PostgreSQL:
//! - drain rate: events/s through outbox → relay → a trivial subscriber, for a backlog of
//!   `BUS_BENCH_EVENTS` events (default 20 000) published beforehand, relayed with the
//!   configuration's default bus settings (`BUS_BENCH_BATCH` tries another batch size);
//! - commit-to-handler latency p50/p99 with the relay running, for events published one per
//!   transaction at a steady pace.
//!
//! A benchmark, not a test: it prints numbers and asserts nothing about them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use kernel::{
    bus::{self, Bus, Event},
    config::{AppEnv, BusSettings, Settings},
    db::{Backend, Db},
    testing::TestDatabase,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct Tick {
    n: u64,
    /// Wall-clock nanoseconds at publication, to measure latency in the handler.
    sent_ns: u128,
}

impl Event for Tick {
    const TYPE: &'static str = "bench.tick";
    const SOURCE: &'static str = "bench";
    const SUMMARY: &'static str = "Benchmark event.";
    fn subject(&self) -> String {
        format!("s{}", self.n % 64)
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The bus settings a user gets by default (`config/default.toml`); `BUS_BENCH_BATCH` tries
/// another batch size.
fn settings() -> BusSettings {
    let mut bus = Settings::defaults(AppEnv::Development)
        .expect("the default configuration loads")
        .bus;
    if let Some(batch) = std::env::var("BUS_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        bus.batch_size = batch;
    }
    bus
}

struct Run {
    bus: Bus,
    db: Db,
    latencies: Arc<Mutex<Vec<u128>>>,
    handled: Arc<Mutex<u64>>,
    _database: TestDatabase,
}

fn setup(backend: Backend) -> Option<Run> {
    let database = TestDatabase::new(backend)?;
    let db = Db::connect(&database.settings()).unwrap();
    db.migrate(&[bus::MIGRATIONS]).unwrap();
    let bus = Bus::new(db.clone(), settings());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let handled = Arc::new(Mutex::new(0_u64));
    let (l, h) = (latencies.clone(), handled.clone());
    bus.subscribe(bus::on::<Tick, _>("bench.counter", move |_tx, tick, _| {
        l.lock()
            .unwrap()
            .push(now_ns().saturating_sub(tick.sent_ns));
        *h.lock().unwrap() += 1;
        Ok(())
    }))
    .unwrap();
    Some(Run {
        bus,
        db,
        latencies,
        handled,
        _database: database,
    })
}

fn publish(run: &Run, from: u64, count: u64, per_tx: u64) {
    let mut conn = run.db.get().unwrap();
    let mut n = from;
    while n < from + count {
        let end = (n + per_tx).min(from + count);
        run.bus
            .write(&mut conn, |tx| {
                for i in n..end {
                    tx.publish(&Tick {
                        n: i,
                        sent_ns: now_ns(),
                    })?;
                }
                Ok::<_, anyhow::Error>(())
            })
            .unwrap();
        n = end;
    }
}

async fn wait_handled(run: &Run, total: u64) {
    while *run.handled.lock().unwrap() < total {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The 1-minute load average (Linux), so a number from a busy machine says so.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

async fn bench(backend: Backend, events: u64) {
    let label = format!("{backend:?}").to_lowercase();
    let Some(run) = setup(backend) else {
        println!("{label}: skipped (TESSERA_TEST_DATABASE_URL is not set)");
        return;
    };
    // Drain: a backlog published in transactions of 100, then the relay empties it.
    let started = Instant::now();
    publish(&run, 0, events, 100);
    let publish_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let relay = run.bus.start_relay();
    wait_handled(&run, events).await;
    let drain_secs = started.elapsed().as_secs_f64();

    // Latency: one event per transaction, ~200 per second, relay running.
    run.latencies.lock().unwrap().clear();
    let paced = 400;
    for i in 0..paced {
        let r = &run;
        tokio::task::block_in_place(|| publish(r, events + i, 1, 1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_handled(&run, events + paced).await;
    relay.stop().await;
    let mut latencies = run.latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    println!(
        "{label}: publish {:.0} events/s (100 per tx) | drain {:.0} events/s ({events} events) | commit→handler p50 {:.2} ms, p99 {:.2} ms ({} paced events) | load average {}",
        events as f64 / publish_secs,
        events as f64 / drain_secs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len(),
        load_average(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = std::env::var("BUS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    bench(Backend::Sqlite, events).await;
    bench(Backend::Postgres, events).await;
}
