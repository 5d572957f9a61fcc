//! Crash under load: the real binary serves concurrent place / pay / cancel / ship traffic,
//! is SIGKILLed at a random moment (and again, up to four times, until a kill interrupts a
//! charge) and restarted on the same database while the clients keep going. Once the bus
//! has settled the books must balance, nothing acknowledged may be lost, no payment may stay
//! `processing`, nothing may be dead-lettered and no request may get a 5xx. The seed is
//! printed; `TESSERA_FAULT_SEED=<seed>` replays the random choices (not the interleaving).

use std::{sync::atomic::Ordering, time::Duration};

use kernel::{db::Backend, testing::TestDatabase};

use crate::{
    books,
    load::{Topology, Traffic, charge_in_progress, create_products},
    process::{Launcher, ONE_AT_A_TIME, Process, Rng, Sql},
};

/// How old a `processing` payment must be before the reconciliation job settles it.
pub const RECONCILE_KEY: &str = "TESSERA__MODULES__PAYMENT__RECONCILE_AFTER_SECS";

/// Starts one process and waits until it is ready. When the binary refuses the
/// reconciliation setting (a build without the job), that is recorded as a failure and the
/// process is started without it, so the rest of the run still measures the damage.
pub async fn start(launcher: &mut Launcher, name: &str, failures: &mut Vec<String>) -> Process {
    let mut process = launcher.spawn(name);
    match process.ready(Duration::from_secs(60)).await {
        Ok(()) => process,
        Err(e) if e.contains("reconcile_after_secs") => {
            failures.push(format!("the binary refuses {RECONCILE_KEY}: {e}"));
            launcher.unset(RECONCILE_KEY);
            let mut process = launcher.spawn(name);
            process.ready(Duration::from_secs(60)).await.unwrap();
            process
        }
        Err(e) => panic!("{e}"),
    }
}

/// Requests all clients send together: a few hundred, so a run takes well under a minute.
const REQUESTS: usize = 400;
const PROCESSING: &str = "SELECT COUNT(*) AS n FROM payments WHERE status = 'processing'";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_crash_under_load_keeps_the_books() {
    crash_under_load(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_crash_under_load_keeps_the_books() {
    crash_under_load(Backend::Postgres).await;
}

async fn crash_under_load(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let (mut rng, seed) = Rng::seeded();
    let mut failures = Vec::new();
    let mut launcher = Launcher::new(db.url());
    launcher.set(RECONCILE_KEY, "2");
    let first = start(&mut launcher, "crash", &mut failures).await;
    let initial = create_products(&first.base, "CRASH", 4, 150).await;
    let mut sql = Sql::connect(db.url());

    let mut traffic = Traffic::start(
        Topology::single(&first.base),
        8,
        REQUESTS,
        initial.keys().cloned().collect(),
        seed,
    );
    let mut processes = vec![first];
    let mut kills = Vec::new();
    // A crash at a random moment, then crashes at random moments while a charge runs, until
    // one interrupts a charge (the worst case: money may have moved, the row says
    // `processing`) or four crashes are spent.
    let mut after = 40 + rng.below(80) as usize;
    for round in 0..4 {
        if after + 20 > REQUESTS {
            break;
        }
        traffic.mid_traffic(after).await;
        let charging = round > 0 && charge_in_progress(&mut sql, Duration::from_secs(5)).await;
        let sent = traffic.sent.load(Ordering::SeqCst);
        traffic.down(0);
        let killed = processes.last_mut().unwrap();
        killed.kill();
        let processing = sql.try_count(PROCESSING).unwrap_or(-1);
        kills.push(format!(
            "SIGKILL {} after {sent} requests begun{} → {processing} payments processing",
            killed.name,
            if charging { ", during a charge" } else { "" }
        ));
        let mut next = launcher.spawn(&format!("crash-restart{round}"));
        let ready = next.ready(Duration::from_secs(60)).await;
        if ready.is_ok() {
            traffic.up(0, &next.base);
        }
        processes.push(next);
        if let Err(e) = ready {
            failures.push(format!("the restart on the same database failed: {e}"));
            break;
        }
        if processing > 0 {
            break;
        }
        after = sent + 30 + rng.below(50) as usize;
    }
    if let Err(e) = traffic.finish(Duration::from_secs(90)).await {
        failures.push(e);
    }

    let settled = books::settle(&mut sql, Duration::from_secs(20)).await;
    // The last process stops as a deployment stops it: SIGTERM, a drain, exit 0.
    match processes
        .last_mut()
        .unwrap()
        .terminate(Duration::from_secs(15))
        .await
    {
        Ok(status) if status.success() => {}
        Ok(status) => failures.push(format!("exit status {status} after SIGTERM")),
        Err(e) => failures.push(e),
    }
    let header = format!(
        "{backend:?} crash under load, seed {seed}: {}; {settled}",
        kills.join("; ")
    );
    books::verdict(&mut sql, &traffic, &initial, &processes, failures, header);
}
