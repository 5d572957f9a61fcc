//! The read cache of `GET /products/{id}`: per product, the response ready to send (the JSON
//! bytes and the ETag), so a hit touches neither the blocking pool, nor the database, nor
//! serde.
//!
//! What keeps it correct:
//!
//! - **This process's writes are visible at once.** A write that changes what GET returns
//!   (create aside: a new id was never cached) calls [`ReadCache::committed`] right after its
//!   commit. A write inside a transaction this module does not commit itself — a saga
//!   subscriber's, which the relay commits with its batch — calls [`ReadCache::uncommitted`]
//!   with the version it wrote: until a read shows that version (the write committed),
//!   nothing older is stored for that product.
//! - **No stale insert.** A reader takes a [`Ticket`] before it reads the database and stores
//!   what it read only if its shard's generation did not move meanwhile; `committed` moves
//!   it. So a row read before a commit is never stored after that commit's invalidation.
//! - **Other processes' writes** (replicas, split deployments on one database) show after at
//!   most the TTL: entries expire.
//!
//! Versions make this sound: every write bumps the product's version, so an (id, version)
//! pair names one committed state. Nothing read inside a write transaction is ever stored:
//! only the GET path inserts, from its own autocommit read.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::{Duration, Instant},
};

use actix_web::{
    HttpResponse,
    http::header::{self, HeaderValue},
    web::Bytes,
};
use anyhow::Context;
use product_api::{Product, ProductError, ProductId, ProductService};

/// Independent locks, so hits on different products do not share one.
const SHARDS: usize = 16;

/// A floor older than this may be dropped when its shard holds too many: the transaction
/// that set it has long committed (then a read resolves it) or rolled back.
const FLOOR_HOLD: Duration = Duration::from_secs(60);

/// A product's `GET` response, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    version: i64,
    etag: HeaderValue,
    body: Bytes,
}

impl Ready {
    /// Serializes `product` once.
    ///
    /// # Errors
    /// Only if it does not serialize.
    pub(crate) fn of(product: &Product) -> Result<Self, ProductError> {
        let body = serde_json::to_vec(product).context("serialize product")?;
        let etag = HeaderValue::from_str(&kernel::http::etag(product.version))
            .context("format the ETag")?;
        Ok(Self {
            version: product.version,
            etag,
            body: Bytes::from(body),
        })
    }

    /// The same response as `kernel::http::json_with_etag(200, product, version)`: status,
    /// `ETag`, `Content-Type: application/json` and body.
    pub(crate) fn respond(&self) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((header::ETAG, self.etag.clone()))
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(self.body.clone())
    }
}

/// The generation of a product's shard, taken before reading it from the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(Option<u64>);

/// The read cache (a no-op when disabled: TTL or capacity 0). Clones share it.
#[derive(Clone, Default)]
pub(crate) struct ReadCache(Option<Arc<Shards>>);

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("ReadCache(off)"),
            Some(s) => f
                .debug_struct("ReadCache")
                .field("ttl", &s.ttl)
                .field("capacity", &(s.per_shard * SHARDS))
                .finish_non_exhaustive(),
        }
    }
}

struct Shards {
    ttl: Duration,
    per_shard: usize,
    shards: [RwLock<Shard>; SHARDS],
}

#[derive(Default)]
struct Shard {
    /// Moves on every invalidation after a commit (and when a floor is resolved).
    generation: u64,
    entries: HashMap<ProductId, Entry>,
    /// Versions written by transactions whose commit this module does not see.
    floors: HashMap<ProductId, Floor>,
}

struct Entry {
    ready: Ready,
    expires: Instant,
}

struct Floor {
    version: i64,
    since: Instant,
}

impl Shards {
    fn index(id: ProductId) -> usize {
        // The last bytes of a UUID v7 are random.
        usize::from(id.0.as_bytes()[15]) % SHARDS
    }

    fn read(&self, id: ProductId) -> RwLockReadGuard<'_, Shard> {
        self.shards[Self::index(id)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, id: ProductId) -> RwLockWriteGuard<'_, Shard> {
        self.shards[Self::index(id)]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReadCache {
    /// A cache whose entries live `ttl` and which holds about `capacity` products; off when
    /// either is zero.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        if ttl.is_zero() || capacity == 0 {
            return Self(None);
        }
        Self(Some(Arc::new(Shards {
            ttl,
            per_shard: capacity.div_ceil(SHARDS),
            shards: std::array::from_fn(|_| RwLock::default()),
        })))
    }

    /// The `GET /products/{id}` response: from the cache, else read through `products` (the
    /// service of the module that owns this cache, whose writes invalidate it) and cached.
    ///
    /// # Errors
    /// As [`ProductService::get`]; [`ProductError::NotFound`] is never cached.
    pub(crate) async fn response(
        &self,
        products: &dyn ProductService,
        id: ProductId,
    ) -> Result<Ready, ProductError> {
        if let Some(hit) = self.get(id) {
            return Ok(hit);
        }
        let ticket = self.ticket(id);
        let product = products.get(id).await?;
        let ready = Ready::of(&product)?;
        self.insert(id, ticket, &ready);
        Ok(ready)
    }

    /// The ready response of `id`, unless absent or expired.
    pub(crate) fn get(&self, id: ProductId) -> Option<Ready> {
        let shards = self.0.as_ref()?;
        let now = Instant::now();
        let shard = shards.read(id);
        let entry = shard.entries.get(&id)?;
        (entry.expires > now).then(|| entry.ready.clone())
    }

    /// Take it before reading `id` from the database; pass it to [`Self::insert`].
    pub(crate) fn ticket(&self, id: ProductId) -> Ticket {
        Ticket(self.0.as_ref().map(|s| s.read(id).generation))
    }

    /// Stores what a reader read, unless an invalidation happened since its `ticket`, the
    /// version is below a pending write's, or a newer version is already there. Returns
    /// whether it was stored.
    pub(crate) fn insert(&self, id: ProductId, ticket: Ticket, ready: &Ready) -> bool {
        let (Some(shards), Some(generation)) = (&self.0, ticket.0) else {
            return false;
        };
        let now = Instant::now();
        let mut guard = shards.write(id);
        let shard = &mut *guard;
        if shard.generation != generation {
            return false;
        }
        if let Some(floor) = shard.floors.get(&id) {
            if ready.version < floor.version {
                return false;
            }
            // That write has committed. Readers still holding a row read before it must not
            // store it now that the floor is gone.
            shard.floors.remove(&id);
            shard.generation += 1;
        }
        match shard.entries.get(&id) {
            Some(e) if e.expires > now && e.ready.version > ready.version => return false,
            Some(_) => {}
            None if shard.entries.len() >= shards.per_shard => {
                // Full: drop what has expired, else one entry (hash order: effectively random).
                shard.entries.retain(|_, e| e.expires > now);
                if shard.entries.len() >= shards.per_shard
                    && let Some(victim) = shard.entries.keys().next().copied()
                {
                    shard.entries.remove(&victim);
                }
            }
            None => {}
        }
        shard.entries.insert(
            id,
            Entry {
                ready: ready.clone(),
                expires: now + shards.ttl,
            },
        );
        true
    }

    /// After a commit of this process that changed `id`: `version` is what it committed,
    /// `None` when it deleted the product.
    pub(crate) fn committed(&self, id: ProductId, version: Option<i64>) {
        let Some(shards) = &self.0 else {
            return;
        };
        let mut shard = shards.write(id);
        shard.generation += 1;
        shard.entries.remove(&id);
        if shard
            .floors
            .get(&id)
            .is_some_and(|f| version.is_none_or(|v| f.version <= v))
        {
            shard.floors.remove(&id);
        }
    }

    /// Inside a transaction this module does not commit (a saga subscriber's): `id` is being
    /// changed to `version`. Nothing older is served or stored until a read shows it.
    pub(crate) fn uncommitted(&self, id: ProductId, version: i64) {
        let Some(shards) = &self.0 else {
            return;
        };
        let now = Instant::now();
        let mut guard = shards.write(id);
        let shard = &mut *guard;
        shard.entries.remove(&id);
        let floor = shard.floors.entry(id).or_insert(Floor {
            version,
            since: now,
        });
        if version >= floor.version {
            *floor = Floor {
                version,
                since: now,
            };
        }
        if shard.floors.len() > shards.per_shard {
            // Floors of rolled-back transactions must not pin memory.
            shard
                .floors
                .retain(|_, f| now.duration_since(f.since) < FLOOR_HOLD);
        }
    }
}

#[cfg(test)]
mod tests;
