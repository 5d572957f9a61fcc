//! Replicas: three instances of the real binary started at the same moment on one fresh,
//! empty PostgreSQL database (each runs the migrations at start-up) must all become ready.
//! Orders are then placed on one, paid on another, cancelled and shipped on the third; the
//! paying replica is SIGKILLed mid-traffic and the others take over. After settling, every
//! saga step happened exactly once and the books balance.

use std::time::Duration;

use kernel::testing::TestDatabase;

use crate::{
    books,
    crash::RECONCILE_KEY,
    load::{Topology, Traffic, charge_in_progress, create_products},
    process::{Launcher, ONE_AT_A_TIME, Process, Rng, Sql},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_start_together_and_run_each_saga_step_once() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let (mut rng, seed) = Rng::seeded();
    let mut failures = Vec::new();
    let mut launcher = Launcher::new(db.url());
    launcher.set(RECONCILE_KEY, "2");
    let mut replicas: Vec<Process> = (0..3)
        .map(|i| launcher.spawn(&format!("replica{i}")))
        .collect();
    let mut refused_key = false;
    let mut down = Vec::new();
    for (i, replica) in replicas.iter_mut().enumerate() {
        if let Err(e) = replica.ready(Duration::from_secs(60)).await {
            refused_key |= e.contains("reconcile_after_secs");
            down.push(i);
            failures.push(format!("replica {i} did not start: {e}"));
        }
    }
    if refused_key {
        launcher.unset(RECONCILE_KEY);
    }
    // Start the failed ones again (the schema exists by now) to measure the rest.
    for &i in &down {
        replicas[i] = launcher.spawn(&format!("replica{i}-again"));
        let again = replicas[i].ready(Duration::from_secs(60)).await;
        assert!(again.is_ok(), "{again:?}\n\n{}", failures.join("\n"));
    }

    let initial = create_products(&replicas[0].base, "REPL", 4, 150).await;
    let topology = Topology {
        generation: 0,
        bases: replicas.iter().map(|r| Some(r.base.clone())).collect(),
        // Place on 0, pay on 1, cancel and ship on 2.
        route: [0, 1, 2, 2],
    };
    const REQUESTS: usize = 360;
    let kill_after = 60 + rng.below(140) as usize;
    let mut traffic = Traffic::start(
        topology,
        8,
        REQUESTS,
        initial.keys().cloned().collect(),
        seed,
    );
    traffic.mid_traffic(kill_after).await;
    let mut sql = Sql::connect(db.url());
    // The paying replica dies while a charge runs.
    let charging = charge_in_progress(&mut sql, Duration::from_secs(5)).await;
    let sent = traffic.sent.load(std::sync::atomic::Ordering::SeqCst);
    traffic.down(1);
    replicas[1].kill();
    if let Err(e) = traffic.finish(Duration::from_secs(90)).await {
        failures.push(e);
    }
    for i in [0, 2] {
        if !replicas[i].alive() {
            failures.push(format!("replica {i} died: {}", replicas[i].stderr_tail(10)));
        }
    }

    let settled = books::settle(&mut sql, Duration::from_secs(20)).await;
    let header = format!(
        "replicas, seed {seed}: replica 1 SIGKILLed after {sent} requests begun{}; {settled}",
        if charging {
            " while a charge was processing"
        } else {
            ""
        }
    );
    books::verdict(&mut sql, &traffic, &initial, &replicas, failures, header);
}
