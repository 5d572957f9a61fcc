//! Running short of database connections or file descriptors: a 503 problem with
//! `Retry-After` the client can act on, never a 500 or a silent hang, and recovery afterwards.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use kernel::db::Backend;
use reqwest::{StatusCode, header};

use crate::helpers::{TestApp, problem};

/// No pooled connection frees up within the pool's timeout (the same error as a connection
/// that cannot be opened for want of file descriptors): 503 with Retry-After, then recovery.
#[tokio::test]
async fn no_database_connection_in_time_is_a_503_with_retry_after() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.database.pool_size = 1;
        s.database.connect_timeout_secs = 1;
        s.database.sqlite_busy_timeout_ms = 60_000;
    })
    .await
    .unwrap();
    // The test holds SQLite's write lock, so a write holds the only pooled connection.
    let path = app.sqlite_path().unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        use diesel::{Connection, RunQueryDsl, sqlite::SqliteConnection};
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        diesel::sql_query("ROLLBACK").execute(&mut conn).unwrap();
    });
    held_rx.await.unwrap();
    let write = tokio::spawn(
        app.admin(reqwest::Method::POST, "/api/v1/products")
            .json(&serde_json::json!({
                "sku": "SHORT-1", "name": "Short", "price": {"amount": 100, "currency": "EUR"}, "stock": 1
            }))
            .send(),
    );
    // Reads succeed until the write has taken the connection; then they must get a 503.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let response = app
            .admin(reqwest::Method::GET, "/api/v1/orders")
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "the write never took the connection"
        );
    };
    let retry_after: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body = problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"].as_str().unwrap().contains("retry"), "{body}");

    release_tx.send(()).unwrap();
    locker.join().unwrap();
    assert_eq!(write.await.unwrap().unwrap().status(), StatusCode::CREATED);
    let after = app
        .admin(reqwest::Method::GET, "/api/v1/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
}

/// The real binary started with a low soft limit raises it to the hard limit; when even that
/// runs out (connections held open by clients) it says so in its log and serves again as soon
/// as descriptors are free.
#[test]
fn the_open_file_limit_is_raised_and_running_out_is_logged_and_survived() {
    const HARD: usize = 160;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile=64:{HARD}"))
        .arg(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env_remove("TESSERA_ENV")
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__SERVER__WORKERS", "1")
        .env("TESSERA__LOG__FILTER", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let mut host = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.find("listening on http://") {
            host = line[i + "listening on http://".len()..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
            break;
        }
        log.push(line);
    }
    let host = host.unwrap_or_else(|| panic!("the server did not start:\n{}", log.join("\n")));
    let raised = log
        .iter()
        .find(|l| l.contains("open-file limit raised"))
        .unwrap_or_else(|| panic!("the limit was not logged:\n{}", log.join("\n")));
    assert!(raised.contains(&format!("open_files={HARD}")), "{raised}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let soft: usize = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(soft, HARD, "{limits}");

    // More idle connections than the process may have descriptors.
    let mut held: Vec<_> = (0..HARD + 40)
        .map(|_| std::net::TcpStream::connect(&host).unwrap())
        .collect();
    let mut saw = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        saw = line.contains("Too many open files");
        log.push(line);
        if saw {
            break;
        }
    }
    assert!(saw, "running out was not logged:\n{}", log.join("\n"));
    held.clear();

    // Serves again once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = try_get(&host, "/health/ready") {
            break status;
        }
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
}

/// A plain-std HTTP/1.0 GET; `None` when the connection fails or gets no answer.
fn try_get(host: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
