//! Unit tests of the read cache's rules (the handlers' behaviour: `tests/read_cache.rs`).

#![allow(clippy::unwrap_used)]

use super::*;
use actix_web::{body::to_bytes, http::StatusCode};
use kernel::money::{Currency, Money};

fn product(version: i64, name: &str) -> Product {
    let now = chrono::Utc::now();
    Product {
        id: ProductId::new(),
        sku: "SKU-1".into(),
        name: name.into(),
        description: "A \"quoted\" description".into(),
        price: Money::new(1999, Currency::parse("EUR").unwrap()),
        stock: 10,
        reserved: 3,
        available: 7,
        version,
        created_at: now,
        updated_at: now,
    }
}

fn ready(version: i64) -> Ready {
    Ready::of(&product(version, &format!("v{version}"))).unwrap()
}

fn cache() -> ReadCache {
    ReadCache::new(Duration::from_secs(60), 100)
}

fn cached_version(cache: &ReadCache, id: ProductId) -> Option<i64> {
    cache.get(id).map(|r| r.version)
}

#[actix_web::test]
async fn a_ready_response_is_what_json_with_etag_answers() {
    let p = product(7, "Tea");
    let ours = Ready::of(&p).unwrap().respond();
    let theirs = kernel::http::json_with_etag(StatusCode::OK, &p, p.version);
    assert_eq!(ours.status(), theirs.status());
    let mut ours_headers: Vec<_> = ours
        .headers()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut theirs_headers: Vec<_> = theirs
        .headers()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ours_headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    theirs_headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(ours_headers, theirs_headers);
    assert_eq!(ours.headers().get(header::ETAG).unwrap(), "\"7\"");
    let ours = to_bytes(ours.into_body()).await.unwrap();
    let theirs = to_bytes(theirs.into_body()).await.unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn a_read_that_began_before_a_commit_is_not_stored_after_it() {
    let cache = cache();
    let id = ProductId::new();
    // Reader: ticket, then reads version 1 from the database...
    let ticket = cache.ticket(id);
    // ...meanwhile a writer commits version 2 and invalidates...
    cache.committed(id, Some(2));
    // ...then the reader tries to store its version 1.
    assert!(!cache.insert(id, ticket, &ready(1)));
    assert_eq!(cached_version(&cache, id), None);
    // A reader that started after the invalidation stores what it read.
    let ticket = cache.ticket(id);
    assert!(cache.insert(id, ticket, &ready(2)));
    assert_eq!(cached_version(&cache, id), Some(2));
    // An invalidation drops the entry.
    cache.committed(id, Some(3));
    assert_eq!(cached_version(&cache, id), None);
}

#[test]
fn a_write_whose_commit_is_unseen_blocks_older_versions_until_it_shows() {
    let cache = cache();
    let id = ProductId::new();
    let early = cache.ticket(id);
    assert!(cache.insert(id, early, &ready(1)));
    let before_commit = cache.ticket(id);
    // A saga subscriber writes version 2 inside the relay's transaction: the entry goes.
    cache.uncommitted(id, 2);
    assert_eq!(cached_version(&cache, id), None);
    // Until the commit, readers read version 1: it is not stored.
    let ticket = cache.ticket(id);
    assert!(!cache.insert(id, ticket, &ready(1)));
    assert_eq!(cached_version(&cache, id), None);
    // After the commit a reader reads version 2 and stores it...
    let ticket = cache.ticket(id);
    assert!(cache.insert(id, ticket, &ready(2)));
    assert_eq!(cached_version(&cache, id), Some(2));
    // ...and a slow reader that read version 1 before the commit cannot replace it.
    assert!(!cache.insert(id, before_commit, &ready(1)));
    assert_eq!(cached_version(&cache, id), Some(2));
}

#[test]
fn a_commit_of_this_process_resolves_a_pending_floor_it_covers() {
    let cache = cache();
    let id = ProductId::new();
    cache.uncommitted(id, 4);
    cache.committed(id, Some(3)); // an older write: the floor stays
    let ticket = cache.ticket(id);
    assert!(!cache.insert(id, ticket, &ready(3)));
    cache.committed(id, Some(5));
    let ticket = cache.ticket(id);
    assert!(cache.insert(id, ticket, &ready(5)));
    // A deletion resolves any floor.
    let other = ProductId::new();
    cache.uncommitted(other, 9);
    cache.committed(other, None);
    let ticket = cache.ticket(other);
    assert!(cache.insert(other, ticket, &ready(1)));
}

#[test]
fn an_older_read_never_replaces_a_newer_entry() {
    // Two readers around another process's write: the slower one read the older row.
    let cache = cache();
    let id = ProductId::new();
    let slow = cache.ticket(id);
    let fast = cache.ticket(id);
    assert!(cache.insert(id, fast, &ready(2)));
    assert!(!cache.insert(id, slow, &ready(1)));
    assert_eq!(cached_version(&cache, id), Some(2));
}

#[test]
fn entries_expire_after_the_ttl() {
    let cache = ReadCache::new(Duration::from_millis(20), 100);
    let id = ProductId::new();
    let ticket = cache.ticket(id);
    assert!(cache.insert(id, ticket, &ready(1)));
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(cached_version(&cache, id), None);
    // An expired entry is replaced by what the next reader read.
    let ticket = cache.ticket(id);
    assert!(cache.insert(id, ticket, &ready(1)));
}

#[test]
fn a_full_cache_stays_within_its_capacity() {
    let cache = ReadCache::new(Duration::from_secs(60), 32);
    let Some(shards) = &cache.0 else {
        panic!("the cache is on");
    };
    for _ in 0..1_000 {
        let id = ProductId::new();
        let ticket = cache.ticket(id);
        assert!(cache.insert(id, ticket, &ready(1)));
        assert_eq!(cached_version(&cache, id), Some(1), "the newest is kept");
    }
    let held: usize = shards
        .shards
        .iter()
        .map(|s| s.read().unwrap().entries.len())
        .sum();
    assert!(held <= 32, "{held} entries");
}

#[test]
fn zero_ttl_or_capacity_turns_it_off() {
    for cache in [
        ReadCache::new(Duration::ZERO, 100),
        ReadCache::new(Duration::from_secs(1), 0),
    ] {
        let id = ProductId::new();
        let ticket = cache.ticket(id);
        assert!(!cache.insert(id, ticket, &ready(1)));
        assert!(cache.get(id).is_none());
    }
}
