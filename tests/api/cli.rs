//! The `tessera` binary as a user runs it: from a directory, configured by environment.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use kernel::{
    auth::{JwtKeys, Role},
    config::{AppEnv, Settings},
};

fn tessera(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.current_dir(dir)
        .env_remove("TESSERA_ENV")
        .env("TESSERA__LOG__FILTER", "warn")
        .env("NO_COLOR", "1");
    cmd
}

/// Waits for `child` to exit; kills it and fails the test if it is still running after
/// `bound` (a hang, not a slow exit: the bound is far above the expected time).
fn exits_within(mut child: std::process::Child, bound: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > bound {
            child.kill().unwrap();
            panic!("still running after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn token_prints_only_a_jwt_for_the_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "clinician",
            "--ttl",
            "120",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert!(
        !token.contains('\n') && token.split('.').count() == 3,
        "{stdout:?}"
    );
    let keys = JwtKeys::new(&Settings::defaults(AppEnv::Development).unwrap().auth);
    let claims = keys.verify(token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.role),
        ("alice", Role::Clinician)
    );
    assert!(claims.exp - claims.iat == 120);

    let secret = "another-secret-that-is-long-enough-000";
    let out = tessera(dir.path())
        .env("TESSERA__AUTH__JWT_SECRET", secret)
        .args(["token", "--sub", "bob", "--role", "admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(
        keys.verify(token.trim()).is_err(),
        "signed with the configured secret"
    );

    let out = tessera(dir.path())
        .args(["token", "--sub", "x", "--role", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown role"));
}

#[test]
fn a_bad_config_value_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .env("TESSERA__SERVER__PORT", "eighty")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("server.port") && !err.contains("panicked"),
        "{err}"
    );

    let out = tessera(dir.path())
        .env("TESSERA_ENV", "staging")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("TESSERA_ENV"));

    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/development.toml"),
        "[server\nport = 1",
    )
    .unwrap();
    let out = tessera(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("development.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn production_refuses_the_default_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .env("TESSERA_ENV", "production")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("JWT secret"), "{}", stderr(&out));
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching the database"
    );
}

#[test]
fn production_refuses_the_development_patient_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera(dir.path())
        .env("TESSERA_ENV", "production")
        .env(
            "TESSERA__AUTH__JWT_SECRET",
            "a-production-secret-of-at-least-32-bytes",
        )
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("modules.patient"), "{}", stderr(&out));
}

/// Exits by itself, non-zero, naming the cause (it does not wait for the database to appear).
#[test]
fn an_unreachable_database_fails_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let child = tessera(dir.path())
        .env(
            "TESSERA__DATABASE__URL",
            "postgres://postgres:hunter2@127.0.0.1:1/nowhere",
        )
        .arg("migrate")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exits_within(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Connection refused") || err.contains("connection refused"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is not printed: {err}"
    );

    let out = tessera(dir.path())
        .env("TESSERA__DATABASE__URL", "mysql://root@localhost/db")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsupported database URL"));
}

#[test]
fn migrate_creates_the_default_sqlite_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = tessera(dir.path()).arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(dir.path().join("data/tessera.db").exists());
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.starts_with("applied ") && !first.starts_with("applied 0"),
        "{first}"
    );
    let again = tessera(dir.path()).arg("migrate").output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("applied 0 migration"));
}

#[test]
fn the_binary_serves_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__LOG__FILTER", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut base = None;
    for line in lines {
        let line = line.unwrap();
        if let Some(i) = line.find("listening on http://") {
            let url = line[i + "listening on ".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            base = Some(url.to_owned());
            assert!(
                line.contains("/swagger-ui/"),
                "the Swagger UI URL is printed: {line}"
            );
            break;
        }
    }
    let base = base.expect("the server printed its address");
    let status = reqwest::blocking_get(&format!("{base}/health/ready"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200);
    assert!(dir.path().join("data/tessera.db").exists());
}

mod reqwest {
    use std::io::{Read, Write};

    /// A plain-std HTTP/1.0 POST of JSON with a bearer token; returns the response body.
    pub fn post_json(base: &str, path: &str, token: &str, body: &str) -> String {
        let host = base.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// A plain-std HTTP/1.0 GET, so this test needs no async runtime.
    pub fn blocking_get(url: &str) -> u16 {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// A card number sent to the real binary appears nowhere in its logs, even at debug level.
#[test]
fn card_numbers_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__LOG__FILTER", "debug")
        .env("TESSERA__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(i) = line.find("listening on http://") {
            base = Some(
                line[i + "listening on ".len()..]
                    .split([' ', '"'])
                    .next()
                    .unwrap()
                    .to_owned(),
            );
            break;
        }
    }
    let base = base.expect("the server printed its address");
    let keys = JwtKeys::new(&Settings::defaults(AppEnv::Development).unwrap().auth);
    let admin = keys.issue("ops", Role::Admin, None).unwrap();
    let customer = keys.issue("zoe", Role::Customer, None).unwrap();
    let product = reqwest::post_json(
        &base,
        "/api/v1/products",
        &admin,
        r#"{"sku":"LOG-1","name":"Logged","price":{"amount":100,"currency":"EUR"},"stock":5}"#,
    );
    let product_id = product
        .split("\"id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let order = reqwest::post_json(
        &base,
        "/api/v1/orders",
        &customer,
        &format!(r#"{{"items":[{{"product_id":"{product_id}","quantity":1}}]}}"#),
    );
    let order_id = order
        .split("\"id\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for number in ["4000000000000002", "4242424242424242"] {
        let paid = reqwest::post_json(
            &base,
            "/api/v1/payments",
            &customer,
            &format!(
                r#"{{"order_id":"{order_id}","card":{{"number":"{number}","exp_month":12,"exp_year":2035,"cvc":"9731"}}}}"#
            ),
        );
        assert!(paid.contains("\"last4\""), "{paid}");
    }
    // A graceful stop (the relay finishes its batch) ends the log at a known point, so
    // everything the server wrote about these payments is read, without guessing a delay.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    for line in lines {
        log.push_str(&line.unwrap_or_default());
        log.push('\n');
    }
    child.wait().unwrap();
    assert!(
        log.contains("/api/v1/payments"),
        "the payment requests were logged"
    );
    for secret in ["4242424242424242", "4000000000000002", "9731"] {
        assert!(!log.contains(secret), "{secret} leaked into the logs");
    }
    // JSON logs: one object per line; a line logged inside a module call carries the
    // request id of the request it served.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let in_module_call = lines
        .iter()
        .find(|line| {
            line["span"]["name"]
                .as_str()
                .is_some_and(|name| name.starts_with("payment.") || name.starts_with("order."))
        })
        .unwrap_or_else(|| panic!("no line was logged inside a module call:\n{log}"));
    assert!(
        in_module_call["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|span| span["request_id"].is_string()),
        "{in_module_call}"
    );
}

/// SIGTERM stops accepting, lets the request in flight finish, stops the relay and jobs, and
/// exits 0.
#[test]
fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    drains_in_flight_requests_on("TERM");
}

/// Ctrl-C (SIGINT) drains like SIGTERM: an operator's interrupt loses no request.
#[test]
fn sigint_drains_in_flight_requests_and_exits_cleanly() {
    drains_in_flight_requests_on("INT");
}

fn drains_in_flight_requests_on(signal: &str) {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tessera(dir.path())
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__LOG__FILTER", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let mut host = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.find("listening on http://") {
            let url = line[i + "listening on http://".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            host = Some(url.to_owned());
            break;
        }
        log.push(line);
    }
    let host = host.expect("the server printed its address");
    let keys = JwtKeys::new(&Settings::defaults(AppEnv::Development).unwrap().auth);
    let token = keys.issue("ops", Role::Admin, None).unwrap();
    let body =
        r#"{"sku":"DRAIN-1","name":"Drained","price":{"amount":100,"currency":"EUR"},"stock":1}"#;

    // A request whose body is still to come when the signal arrives. `Expect: 100-continue`
    // makes the server say when it has read the head: from then on the request is in flight
    // (an idle keep-alive connection, by contrast, is closed at shutdown).
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "POST /api/v1/products HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut interim = String::new();
    reader.read_line(&mut interim).unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    reader.read_line(&mut interim).unwrap();
    let killed = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The worker holding the connection says it is draining it: shutdown has begun.
    for line in lines.by_ref() {
        let line = line.unwrap();
        let draining = line.contains("graceful worker shutdown; finishing");
        assert!(!line.contains("forced shutdown"), "SIG{signal}: {line}");
        log.push(line);
        if draining {
            break;
        }
    }
    let _ = stream.write_all(body.as_bytes());
    let mut response = String::new();
    let _ = reader.read_to_string(&mut response);
    if !response.starts_with("HTTP/1.1 201") {
        let _ = child.kill();
        log.extend(lines.map_while(Result::ok));
        panic!("{response}\n{}", log.join("\n"));
    }

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    log.extend(lines.map_while(Result::ok));
    let log = log.join("\n");
    assert!(status.success(), "exit status {status:?}: {log}");
    assert!(log.contains(&format!("SIG{signal} received")), "{log}");
    assert!(log.contains("event relay stopped"), "{log}");
}

#[test]
fn doctor_says_what_is_wrong_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = tessera(dir.path()).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&fresh.stdout).into_owned();
    assert_eq!(fresh.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  migrations") && text.contains("tessera migrate"),
        "{text}"
    );

    assert!(
        tessera(dir.path())
            .arg("migrate")
            .output()
            .unwrap()
            .status
            .success()
    );
    let healthy = tessera(dir.path()).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&healthy.stdout).into_owned();
    assert!(healthy.status.success(), "{text}");
    assert!(
        text.contains("migrations: all applied") && !text.contains("FAIL"),
        "{text}"
    );

    let no_nats = tessera(dir.path())
        .env("TESSERA__BUS__NATS_URL", "nats://127.0.0.1:1")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&no_nats.stdout).into_owned();
    assert_eq!(no_nats.status.code(), Some(1));
    assert!(text.contains("FAIL  NATS"), "{text}");
}
