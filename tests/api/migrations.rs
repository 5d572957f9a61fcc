//! Replicas rolled out together migrate one fresh database at once: they take turns, each
//! migration is applied exactly once, and every one of them starts. (SQLite needs no test of
//! its own here: its single writer lock already kept concurrent runs apart before the change.)

use std::sync::{Arc, Barrier};

use kernel::{
    db::{Backend, Db, Migrations},
    testing::TestDatabase,
};

const REPLICAS: usize = 4;

fn every_module() -> Vec<Migrations> {
    vec![
        kernel::bus::MIGRATIONS,
        product::MIGRATIONS,
        order::MIGRATIONS,
        payment::MIGRATIONS,
        patient::MIGRATIONS,
        contract::MIGRATIONS,
    ]
}

fn replicas_migrate_one_fresh_database_at_once(backend: Backend) {
    let Some(database) = TestDatabase::new(backend) else {
        return;
    };
    let start = Arc::new(Barrier::new(REPLICAS));
    let replicas: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let settings = database.settings();
            let start = start.clone();
            std::thread::spawn(move || {
                // Each replica its own pool, as separate processes would have.
                let db = Db::connect(&settings)?;
                start.wait();
                db.migrate(&every_module())
            })
        })
        .collect();
    let applied: Vec<Vec<String>> = replicas
        .into_iter()
        .map(|r| r.join().unwrap())
        .collect::<anyhow::Result<_>>()
        .unwrap_or_else(|e| panic!("a replica failed to migrate: {e:#}"));

    let db = Db::connect(&database.settings()).unwrap();
    assert!(db.pending_migrations(&every_module()).unwrap().is_empty());
    let mut versions: Vec<&String> = applied.iter().flatten().collect();
    let total = versions.len();
    versions.sort();
    versions.dedup();
    assert_eq!(total, versions.len(), "a migration was applied twice");
    assert!(
        applied.iter().filter(|a| !a.is_empty()).count() == 1,
        "one replica applies everything, the others find nothing to do: {applied:?}"
    );
}

#[test]
fn replicas_migrate_one_fresh_postgres_database_at_once() {
    replicas_migrate_one_fresh_database_at_once(Backend::Postgres);
}
