//! Shop traffic for the fault tests: several customers placing, paying, cancelling and (as
//! admin) shipping orders concurrently against one or more running binaries, each request
//! with an Idempotency-Key. Every answer is tallied; every 2xx is "acknowledged" and kept in
//! the [`Ledger`], which the books are checked against afterwards (see `books.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use kernel::auth::Role;
use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::process::{Rng, Sql, token};

pub const VISA_OK: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Place,
    Pay,
    Cancel,
    Ship,
}

/// Where requests go: one base URL per process (`None` while it is down), and which process
/// each action prefers (the next live one takes over when it is down). `generation` changes
/// with every kill and restart.
#[derive(Clone, Debug)]
pub struct Topology {
    pub generation: u64,
    pub bases: Vec<Option<String>>,
    pub route: [usize; 4],
}

impl Topology {
    pub fn single(base: &str) -> Self {
        Self {
            generation: 0,
            bases: vec![Some(base.to_owned())],
            route: [0; 4],
        }
    }

    fn pick(&self, action: Action) -> Option<String> {
        let n = self.bases.len();
        let first = self.route[action as usize];
        (0..n).find_map(|i| self.bases[(first + i) % n].clone())
    }
}

#[derive(Debug, Clone)]
pub struct AckPayment {
    pub id: String,
    pub order: String,
    pub status: String,
}

/// What the clients were told.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Orders answered 201.
    pub orders: Vec<String>,
    /// Payments answered 201, with the status then.
    pub payments: Vec<AckPayment>,
    /// Orders whose cancel answered 200.
    pub cancels: Vec<String>,
    /// Orders whose ship answered 200.
    pub ships: Vec<String>,
    /// Every 5xx: request, status and body.
    pub server_errors: Vec<(String, u16, String)>,
    /// Requests that got no answer: (base they went to, request, error).
    pub cut: Vec<(String, String, String)>,
    /// Answers per action and status.
    pub answers: BTreeMap<(Action, u16), usize>,
}

/// The running clients and what they share with the test that steers them.
pub struct Traffic {
    pub topology: watch::Sender<Topology>,
    pub ledger: Arc<Mutex<Ledger>>,
    /// Requests begun so far.
    pub sent: Arc<AtomicUsize>,
    /// Payments in flight right now.
    pub paying: Arc<AtomicUsize>,
    /// Bases of processes the test killed: requests to them may go unanswered.
    pub killed: Arc<Mutex<BTreeSet<String>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    topology: watch::Receiver<Topology>,
    ledger: Arc<Mutex<Ledger>>,
    sent: Arc<AtomicUsize>,
    paying: Arc<AtomicUsize>,
    budget: usize,
    products: Vec<String>,
    admin: String,
}

impl Traffic {
    /// Starts `clients` customers sharing a budget of `requests` requests over `products`.
    pub fn start(
        topology: Topology,
        clients: usize,
        requests: usize,
        products: Vec<String>,
        seed: u64,
    ) -> Self {
        let (tx, rx) = watch::channel(topology);
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let shared = Arc::new(Shared {
            topology: rx,
            ledger: ledger.clone(),
            sent: Arc::new(AtomicUsize::new(0)),
            paying: Arc::new(AtomicUsize::new(0)),
            budget: requests,
            products,
            admin: token("fault-ops", Role::Admin),
        });
        let handles = (0..clients)
            .map(|i| {
                tokio::spawn(client(
                    i,
                    shared.clone(),
                    Rng::from_seed(seed.wrapping_add(i as u64)),
                ))
            })
            .collect();
        Self {
            topology: tx,
            ledger,
            sent: shared.sent.clone(),
            paying: shared.paying.clone(),
            killed: Arc::default(),
            clients: handles,
        }
    }

    /// Marks process `index` down (before it is killed, so clients stop choosing it).
    pub fn down(&self, index: usize) {
        self.topology.send_modify(|t| {
            if let Some(base) = t.bases[index].take() {
                self.killed.lock().unwrap().insert(base);
            }
            t.generation += 1;
        });
    }

    /// Process `index` is up again at `base`.
    pub fn up(&self, index: usize, base: &str) {
        self.topology.send_modify(|t| {
            t.bases[index] = Some(base.to_owned());
            t.generation += 1;
        });
    }

    /// Waits (bounded) until the budget is spent and every client is done.
    pub async fn finish(&mut self, within: Duration) -> Result<(), String> {
        let all = futures_util::future::join_all(std::mem::take(&mut self.clients));
        match tokio::time::timeout(within, all).await {
            Ok(results) => match results.into_iter().find_map(Result::err) {
                Some(e) => Err(format!("a client task failed: {e}")),
                None => Ok(()),
            },
            Err(_) => Err(format!("the clients did not finish within {within:?}")),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Known {
    Pending,
    Paid,
    Closed,
}

async fn client(i: usize, shared: Arc<Shared>, mut rng: Rng) {
    let customer = token(&format!("fault-c{i}"), Role::Customer);
    let http = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut topology = shared.topology.clone();
    let mut mine: Vec<(String, Known, u8)> = Vec::new();
    while shared.sent.fetch_add(1, Ordering::SeqCst) < shared.budget {
        let now: Topology = {
            let live = topology.wait_for(|t| t.bases.iter().any(Option::is_some));
            match tokio::time::timeout(Duration::from_secs(60), live).await {
                Ok(Ok(now)) => now.clone(),
                _ => return,
            }
        };
        let of = |k: Known| -> Vec<usize> { (0..mine.len()).filter(|&j| mine[j].1 == k).collect() };
        let (pending, paid) = (of(Known::Pending), of(Known::Paid));
        let pick = |rng: &mut Rng, v: &[usize]| v[rng.below(v.len() as u64) as usize];
        let roll = rng.below(100);
        let (action, target) = if (pending.is_empty() && paid.is_empty()) || roll < 35 {
            (Action::Place, None)
        } else if roll < 70 && !pending.is_empty() {
            (Action::Pay, Some(pick(&mut rng, &pending)))
        } else if roll < 82 {
            let open = [pending.as_slice(), paid.as_slice()].concat();
            (Action::Cancel, Some(pick(&mut rng, &open)))
        } else if !paid.is_empty() {
            (Action::Ship, Some(pick(&mut rng, &paid)))
        } else {
            (Action::Place, None)
        };
        let Some(base) = now.pick(action) else {
            continue;
        };
        let order = target.map(|j| mine[j].0.clone()).unwrap_or_default();
        let (path, body, bearer) = match action {
            Action::Place => {
                let n = shared.products.len() as u64;
                let first = rng.below(n) as usize;
                let mut items = vec![json!({"product_id": shared.products[first],
                    "quantity": 1 + rng.below(3)})];
                if rng.chance(50) {
                    // A second line in random order: two placements may lock the same two
                    // rows in opposite orders.
                    let second = (first + 1 + rng.below(n - 1) as usize) % n as usize;
                    items.push(json!({"product_id": shared.products[second],
                        "quantity": 1 + rng.below(2)}));
                }
                let body = Some(json!({"items": items}));
                ("/api/v1/orders".to_owned(), body, &customer)
            }
            Action::Pay => {
                let number = if rng.chance(85) { VISA_OK } else { DECLINED };
                let card =
                    json!({"number": number, "exp_month": 12, "exp_year": 2035, "cvc": "314"});
                let body = Some(json!({"order_id": order, "card": card}));
                ("/api/v1/payments".to_owned(), body, &customer)
            }
            Action::Cancel => (format!("/api/v1/orders/{order}/cancel"), None, &customer),
            Action::Ship => (format!("/api/v1/orders/{order}/ship"), None, &shared.admin),
        };
        let mut request = http
            .request(Method::POST, format!("{base}{path}"))
            .bearer_auth(bearer)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string());
        if let Some(body) = &body {
            request = request.json(body);
        }
        if action == Action::Pay {
            shared.paying.fetch_add(1, Ordering::SeqCst);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                Ok((status, response.text().await.unwrap_or_default()))
            }
            Err(e) => Err(e),
        };
        if action == Action::Pay {
            shared.paying.fetch_sub(1, Ordering::SeqCst);
        }
        let what = format!("{action:?} POST {path}");
        let (status, text) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                shared
                    .ledger
                    .lock()
                    .unwrap()
                    .cut
                    .push((base, what, format!("{e:?}")));
                // Resume once the test has noticed (a kill, a restart), bounded.
                let moved = topology.wait_for(|t| t.generation > now.generation);
                let _ = tokio::time::timeout(Duration::from_secs(30), moved).await;
                continue;
            }
        };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut ledger = shared.ledger.lock().unwrap();
        *ledger.answers.entry((action, status)).or_default() += 1;
        if status >= 500 {
            ledger.server_errors.push((what, status, text));
        }
        let ok = (200..300).contains(&status);
        match (action, target) {
            (Action::Place, _) if ok => {
                let id = value["id"].as_str().unwrap_or_default().to_owned();
                ledger.orders.push(id.clone());
                mine.push((id, Known::Pending, 0));
            }
            (Action::Pay, Some(j)) if ok => {
                let status = value["status"].as_str().unwrap_or_default().to_owned();
                if status == "succeeded" {
                    mine[j].1 = Known::Paid;
                }
                ledger.payments.push(AckPayment {
                    id: value["id"].as_str().unwrap_or_default().to_owned(),
                    order,
                    status,
                });
            }
            (Action::Cancel, Some(j)) if ok => {
                ledger.cancels.push(order);
                mine[j].1 = Known::Closed;
            }
            (Action::Ship, Some(j)) if ok => {
                ledger.ships.push(order);
                mine[j].1 = Known::Closed;
            }
            // A 409 on pay or cancel: the order moved on (paid, cancelled, expired).
            (Action::Pay | Action::Cancel, Some(j)) if status == 409 => mine[j].1 = Known::Closed,
            // Not paid yet (the saga is asynchronous): try again later, a few times.
            (Action::Ship, Some(j)) if status == 409 => {
                mine[j].2 += 1;
                if mine[j].2 >= 3 {
                    mine[j].1 = Known::Closed;
                }
            }
            _ => {}
        }
    }
}

impl Traffic {
    /// Waits (bounded) for a random moment in the middle of the traffic: once `after`
    /// requests were begun, and preferably while a payment is in flight, when a crash does
    /// the most harm.
    pub async fn mid_traffic(&self, after: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.sent.load(Ordering::SeqCst) < after && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.paying.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Requests that got no answer from a process the test did not kill.
    pub fn unexpected_cuts(&self) -> Vec<String> {
        let killed = self.killed.lock().unwrap();
        self.ledger
            .lock()
            .unwrap()
            .cut
            .iter()
            .filter(|(base, _, _)| !killed.contains(base))
            .map(|(base, what, e)| format!("{what} to {base}: {e}"))
            .collect()
    }
}

/// Creates `count` products with `stock` units each through `base`; returns id → stock.
pub async fn create_products(
    base: &str,
    prefix: &str,
    count: usize,
    stock: i64,
) -> BTreeMap<String, i64> {
    let http = Client::new();
    let admin = token("fault-ops", Role::Admin);
    let mut products = BTreeMap::new();
    for i in 0..count {
        let response = http
            .post(format!("{base}/api/v1/products"))
            .bearer_auth(&admin)
            .json(
                &json!({"sku": format!("{prefix}-{i}"), "name": format!("Hot {i}"),
                "price": {"amount": 1000 + 100 * i, "currency": "EUR"}, "stock": stock}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "creating a product");
        let body: Value = response.json().await.unwrap();
        products.insert(body["id"].as_str().unwrap().to_owned(), stock);
    }
    products
}

/// Waits (bounded) until a payment is `processing` — a charge between its two writes — so
/// a kill right then may interrupt it. False when none was seen in time.
pub async fn charge_in_progress(sql: &mut Sql, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let query = "SELECT COUNT(*) AS n FROM payments WHERE status = 'processing'";
        if sql.try_count(query).is_ok_and(|n| n > 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}
