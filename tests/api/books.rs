//! The books after a fault, read straight from the database: stock, reservations, payments,
//! the bus, and what the clients were told. Every broken invariant becomes one line naming
//! the figures, so a failing run says what went wrong without a debugger.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Integer, Nullable, Text},
};

use crate::{
    load::{Ledger, Traffic},
    process::{Process, Sql},
};

#[derive(QueryableByName)]
struct ProductRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    stock: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
}

#[derive(QueryableByName)]
struct Item {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    product_id: String,
    #[diesel(sql_type = BigInt)]
    quantity: i64,
}

#[derive(QueryableByName)]
struct PaymentRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = BigInt)]
    refunded: i64,
}

#[derive(QueryableByName)]
struct DeadLetter {
    #[diesel(sql_type = Text)]
    subscriber: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

#[derive(QueryableByName)]
struct EventCount {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const UNSETTLED: [(&str, &str); 3] = [
    (
        "pending deliveries",
        "SELECT COUNT(*) AS n FROM bus_deliveries WHERE status = 'pending'",
    ),
    (
        "payments processing",
        "SELECT COUNT(*) AS n FROM payments WHERE status = 'processing'",
    ),
    (
        "orders reserving",
        "SELECT COUNT(*) AS n FROM orders WHERE status = 'reserving'",
    ),
];

/// Waits (bounded by `within`) until no delivery is pending, no payment is `processing` and
/// no placement is half done. Returns how it went, for the report.
pub async fn settle(sql: &mut Sql, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let counts: Vec<(&str, i64)> = UNSETTLED.iter().map(|(w, q)| (*w, sql.count(q))).collect();
        if counts.iter().all(|(_, n)| *n == 0) {
            return format!("settled in {:.1?}", started.elapsed());
        }
        if started.elapsed() > within {
            return format!("NOT settled after {within:?}: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Adds "N <what>: <the first few>" to `failures` when `found` is not empty.
fn report(failures: &mut Vec<String>, what: &str, found: &[String]) {
    if !found.is_empty() {
        let shown = &found[..found.len().min(5)];
        failures.push(format!("{} {what}: {shown:?}", found.len()));
    }
}

/// Checks every invariant; returns the figures (always) and the broken invariants.
pub fn check(
    sql: &mut Sql,
    ledger: &Ledger,
    initial: &BTreeMap<String, i64>,
) -> (String, Vec<String>) {
    let mut failures = Vec::new();
    let orders: HashMap<String, String> = sql
        .rows::<Pair>("SELECT id AS a, status AS b FROM orders")
        .into_iter()
        .map(|p| (p.a, p.b))
        .collect();
    let reservations: HashMap<String, String> = sql
        .rows::<Pair>("SELECT id AS a, status AS b FROM product_reservations")
        .into_iter()
        .map(|p| (p.a, p.b))
        .collect();
    let items = sql.rows::<Item>(
        "SELECT order_id, product_id, CAST(quantity AS BIGINT) AS quantity FROM order_items",
    );
    let payments = sql.rows::<PaymentRow>(
        "SELECT id, order_id, status, amount, refunded FROM payments ORDER BY created_at",
    );
    let products = sql.rows::<ProductRow>("SELECT id, stock, reserved FROM products");

    // Stock: on hand + sold = initial; reserved = units in unpaid orders.
    let mut sold: HashMap<&str, i64> = HashMap::new();
    let mut unpaid: HashMap<&str, i64> = HashMap::new();
    for item in &items {
        match orders.get(&item.order_id).map(String::as_str) {
            Some("paid" | "shipped" | "delivered") => {
                *sold.entry(&item.product_id).or_default() += item.quantity
            }
            Some("pending_payment") => {
                *unpaid.entry(&item.product_id).or_default() += item.quantity
            }
            _ => {}
        }
    }
    for p in &products {
        let Some(initial) = initial.get(&p.id) else {
            continue;
        };
        let sold = sold.get(p.id.as_str()).copied().unwrap_or(0);
        let unpaid = unpaid.get(p.id.as_str()).copied().unwrap_or(0);
        if p.stock + sold != *initial {
            failures.push(format!(
                "product {}: stock {} + sold {sold} = {} ≠ initial {initial}",
                p.id,
                p.stock,
                p.stock + sold
            ));
        }
        if p.reserved != unpaid {
            failures.push(format!(
                "product {}: reserved {} ≠ {unpaid} units in unpaid orders",
                p.id, p.reserved
            ));
        }
    }

    // Reservations follow their orders (reservation id = order id).
    let mut mismatched = Vec::new();
    for (id, status) in &orders {
        let expected = match status.as_str() {
            "pending_payment" => Some("active"),
            "paid" | "shipped" | "delivered" => Some("committed"),
            _ => None,
        };
        let actual = reservations.get(id).map(String::as_str);
        let fine = match status.as_str() {
            "cancelled" => matches!(actual, None | Some("released")),
            _ => actual == expected,
        };
        if !fine {
            mismatched.push(format!("order {id} {status} / reservation {actual:?}"));
        }
    }
    report(
        &mut failures,
        "reservations disagree with their orders",
        &mismatched,
    );

    // Payments: a paid order by exactly one succeeded payment; a cancelled one refunded.
    let mut by_order: HashMap<&str, Vec<&PaymentRow>> = HashMap::new();
    for p in &payments {
        by_order.entry(&p.order_id).or_default().push(p);
    }
    let mut wrong = Vec::new();
    for (id, status) in &orders {
        let mine = by_order.get(id.as_str()).cloned().unwrap_or_default();
        let count = |s: &str| mine.iter().filter(|p| p.status == s).count();
        let bad = match status.as_str() {
            "paid" | "shipped" | "delivered" => {
                count("succeeded") != 1
                    || mine
                        .iter()
                        .any(|p| p.status != "succeeded" && p.status != "failed")
            }
            "cancelled" => mine.iter().any(|p| {
                p.status != "failed" && !(p.status == "refunded" && p.refunded == p.amount)
            }),
            _ => count("succeeded") + count("refunded") + count("partially_refunded") > 0,
        };
        if bad {
            let seen: Vec<_> = mine
                .iter()
                .map(|p| format!("{}:{}", p.status, p.refunded))
                .collect();
            wrong.push(format!("order {id} {status} with payments {seen:?}"));
        }
    }
    report(&mut failures, "orders whose payments do not match", &wrong);
    let stuck: Vec<String> = payments
        .iter()
        .filter(|p| p.status == "processing")
        .map(|p| format!("{} of order {}", p.id, p.order_id))
        .collect();
    let what = "payments still processing after the reconciliation age";
    report(&mut failures, what, &stuck);

    // Every acknowledged request is visible.
    let mut lost = Vec::new();
    for id in &ledger.orders {
        if orders.get(id).is_none_or(|s| s == "reserving") {
            lost.push(format!("order {id} (201) is {:?}", orders.get(id)));
        }
    }
    let payment_status: HashMap<&str, &str> = payments
        .iter()
        .map(|p| (p.id.as_str(), p.status.as_str()))
        .collect();
    for ack in &ledger.payments {
        let now = payment_status.get(ack.id.as_str()).copied();
        let fits = match ack.status.as_str() {
            "succeeded" => matches!(now, Some("succeeded" | "refunded" | "partially_refunded")),
            other => now == Some(other),
        };
        if !fits {
            lost.push(format!(
                "payment {} of order {} (201 {}) is {now:?}",
                ack.id, ack.order, ack.status
            ));
        }
    }
    for (list, want) in [(&ledger.cancels, "cancelled"), (&ledger.ships, "shipped")] {
        for id in list {
            if orders.get(id).map(String::as_str) != Some(want) {
                lost.push(format!(
                    "order {id} ({want} acknowledged) is {:?}",
                    orders.get(id)
                ));
            }
        }
    }
    report(&mut failures, "acknowledged requests not visible", &lost);

    // The bus: no dead letters, nothing left pending, each saga step once.
    let dead = sql.rows::<DeadLetter>(
        "SELECT d.subscriber, e.type AS kind, d.attempts, d.last_error FROM bus_deliveries d \
         JOIN bus_events e ON e.seq = d.seq WHERE d.status = 'failed'",
    );
    let dead_letters: Vec<String> = dead
        .iter()
        .map(|d| {
            let error = d.last_error.as_deref().unwrap_or("?");
            let (who, kind, n) = (&d.subscriber, &d.kind, d.attempts);
            format!("{who} ← {kind} after {n} attempts: {error}")
        })
        .collect();
    report(&mut failures, "dead letters", &dead_letters);
    let pending = sql.count("SELECT COUNT(*) AS n FROM bus_deliveries WHERE status = 'pending'");
    if pending > 0 {
        failures.push(format!("{pending} deliveries still pending"));
    }
    let steps = sql.rows::<EventCount>(
        "SELECT type AS kind, subject, CAST(COUNT(*) AS BIGINT) AS n FROM bus_events \
         WHERE type IN ('payment.succeeded', 'order.paid', 'inventory.committed') GROUP BY type, subject",
    );
    let twice: Vec<String> = steps
        .iter()
        .filter(|s| s.n > 1)
        .map(|s| format!("{} ×{} for {}", s.kind, s.n, s.subject))
        .collect();
    report(&mut failures, "saga steps happened more than once", &twice);
    let once: HashMap<(&str, &str), i64> = steps
        .iter()
        .map(|s| ((s.kind.as_str(), s.subject.as_str()), s.n))
        .collect();
    let mut missing = Vec::new();
    for (id, status) in &orders {
        if matches!(status.as_str(), "paid" | "shipped" | "delivered") {
            for kind in ["payment.succeeded", "order.paid", "inventory.committed"] {
                if !once.contains_key(&(kind, id.as_str())) {
                    missing.push(format!("{kind} for {status} order {id}"));
                }
            }
        }
    }
    report(&mut failures, "saga steps missing", &missing);

    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for s in orders.values() {
        *by_status.entry(s).or_default() += 1;
    }
    let mut pay_status: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &payments {
        *pay_status.entry(&p.status).or_default() += 1;
    }
    let figures = format!(
        "answers {:?}\nacknowledged: {} orders, {} payments, {} cancels, {} ships; unanswered {}; 5xx {}\n\
         orders {by_status:?}\npayments {pay_status:?}\ndead letters {}, pending deliveries {pending}, stuck payments {}",
        ledger.answers,
        ledger.orders.len(),
        ledger.payments.len(),
        ledger.cancels.len(),
        ledger.ships.len(),
        ledger.cut.len(),
        ledger.server_errors.len(),
        dead.len(),
        stuck.len(),
    );
    (figures, failures)
}

/// The 5xx answers grouped by status and problem detail, each group with what the servers
/// logged for its first request (the problem carries a request id, the logs the cause).
pub fn server_errors(ledger: &Ledger, processes: &[&Process]) -> Option<String> {
    if ledger.server_errors.is_empty() {
        return None;
    }
    let mut groups: BTreeMap<(String, u16, String), (usize, String)> = BTreeMap::new();
    for (what, status, body) in &ledger.server_errors {
        let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let detail = body["detail"]
            .as_str()
            .unwrap_or("(not a problem)")
            .to_owned();
        let request_id = body["request_id"].as_str().unwrap_or_default().to_owned();
        let group = groups
            .entry((what.clone(), *status, detail))
            .or_insert((0, request_id));
        group.0 += 1;
    }
    let lines: Vec<String> = groups
        .into_iter()
        .map(|((what, status, detail), (n, request_id))| {
            let logged: Vec<String> = processes
                .iter()
                .flat_map(|p| p.problems_logged(&request_id))
                .take(2)
                .map(|l| l.chars().take(600).collect())
                .collect();
            format!("{n} × {what} → {status} \"{detail}\"; logged for {request_id}: {logged:?}")
        })
        .collect();
    Some(format!(
        "{} 5xx answers:\n    {}",
        ledger.server_errors.len(),
        lines.join("\n    ")
    ))
}

/// The end of a fault test: checks the books against what the clients saw, adds the 5xx and
/// the requests a live process left unanswered to `failures`, and fails with all of them and
/// the figures (or prints the figures).
pub fn verdict(
    sql: &mut Sql,
    traffic: &Traffic,
    initial: &BTreeMap<String, i64>,
    processes: &[Process],
    mut failures: Vec<String>,
    header: String,
) {
    let ledger = traffic.ledger.lock().unwrap();
    let (figures, broken) = check(sql, &ledger, initial);
    failures.extend(broken);
    let all: Vec<&Process> = processes.iter().collect();
    failures.extend(server_errors(&ledger, &all));
    drop(ledger);
    let unexpected = traffic.unexpected_cuts();
    if !unexpected.is_empty() {
        failures.push(format!(
            "{} requests unanswered by a live process: {:?}",
            unexpected.len(),
            &unexpected[..unexpected.len().min(5)]
        ));
    }
    let logged: Vec<String> = processes.iter().map(Process::problems_summary).collect();
    let report = format!("{header}\n{figures}\n{}", logged.join("\n"));
    assert!(
        failures.is_empty(),
        "{} invariants broken:\n- {}\n\n{report}",
        failures.len(),
        failures.join("\n- ")
    );
    eprintln!("{report}");
}
