//! The real `tessera` binary as an operator runs it, for fault tests: started on a free port
//! with its configuration in the environment and its own working directory, stderr kept in a
//! file, SIGKILLed or SIGTERMed, restarted on the same database. Every child is killed when
//! its [`Process`] is dropped, on every exit path of a test. Also direct SQL on the test
//! database, for the invariants the public API does not show (bus tables, reservations).

use std::{
    fs::File,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use diesel::{
    Connection, QueryableByName, RunQueryDsl, pg::Pg, pg::PgConnection, sqlite::Sqlite,
    sqlite::SqliteConnection,
};
use kernel::{
    auth::{JwtKeys, Role},
    config::{AppEnv, Settings},
};

/// Fault tests each run several binaries under load on a small machine: they take turns,
/// so one test's load does not turn into another's timeouts.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A port nobody listens on right now (bound, read and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Tokens the binary accepts: it runs with the development secret, like `tessera token`.
pub fn token(sub: &str, role: Role) -> String {
    let keys = JwtKeys::new(&Settings::defaults(AppEnv::Development).unwrap().auth);
    keys.issue(sub, role, None).unwrap()
}

/// How to start the binary: a working directory and the `TESSERA__…` variables.
pub struct Launcher {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    started: usize,
}

impl Launcher {
    /// Fault-test defaults on `database_url`: no rate limit, short bus leases and backoff (a
    /// killed process's deliveries are taken over within seconds), a fast expiry sweep (a
    /// placement cut by a kill is cleaned up), request timeouts below the client's.
    pub fn new(database_url: &str) -> Self {
        let env = [
            ("TESSERA__DATABASE__URL", database_url),
            ("TESSERA__SERVER__WORKERS", "2"),
            ("TESSERA__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
            ("TESSERA__HTTP__RATE_LIMIT_PER_SECOND", "0"),
            ("TESSERA__HTTP__REQUEST_TIMEOUT_SECS", "10"),
            ("TESSERA__BUS__LEASE_SECS", "2"),
            ("TESSERA__BUS__BACKOFF_BASE_MS", "50"),
            ("TESSERA__BUS__BACKOFF_MAX_MS", "500"),
            ("TESSERA__BUS__POLL_INTERVAL_MS", "100"),
            ("TESSERA__MODULES__ORDER__EXPIRY_CHECK_SECS", "1"),
            ("TESSERA__MODULES__ORDER__STUCK_PLACEMENT_SECS", "3"),
            ("TESSERA__LOG__FILTER", "info"),
        ];
        Self {
            dir: tempfile::tempdir().unwrap(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            started: 0,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(self.dir.path())
            .env_remove("TESSERA_ENV")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Starts `tessera serve` on a fresh free port (not yet ready: see [`Process::ready`]).
    pub fn spawn(&mut self, name: &str) -> Process {
        self.started += 1;
        let port = free_port();
        let log = self
            .dir
            .path()
            .join(format!("{name}-{}.stderr.log", self.started));
        let child = self
            .command()
            .env("TESSERA__SERVER__PORT", port.to_string())
            .arg("serve")
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Process {
            name: format!("{name}#{}", self.started),
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            exited: None,
        }
    }
}

/// One running binary; killed (SIGKILL) and reaped when dropped.
pub struct Process {
    pub name: String,
    child: Child,
    pub base: String,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Waits until `/health/ready` answers 200; `Err` (with the exit status and the tail of
    /// stderr) when the process exits first or `within` runs out.
    pub async fn ready(&mut self, within: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + within;
        let url = format!("{}/health/ready", self.base);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return Err(format!(
                    "{} exited with {status} before it was ready; stderr:\n{}",
                    self.name,
                    self.stderr_tail(15)
                ));
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready within {within:?}; stderr:\n{}",
                    self.name,
                    self.stderr_tail(15)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no drain, no shutdown hooks — a crash.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit: `Err` when it does not exit in time.
    pub async fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {}", self.child.id());
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{} did not exit within {within:?} of SIGTERM",
            self.name
        ))
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.exited.is_none() && self.child.try_wait().ok().flatten().is_none()
    }

    /// The last `lines` lines of its stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Log records of its stderr at WARN or ERROR level that contain `needle`; a record's
    /// continuation lines (an error's causes, its span fields) are joined with ` | `.
    pub fn problems_logged(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut records: Vec<String> = Vec::new();
        for line in text.lines() {
            let starts_record = line.len() > 4 && line[..4].bytes().all(|b| b.is_ascii_digit());
            match records.last_mut() {
                Some(record) if !starts_record => {
                    record.push_str(" | ");
                    record.push_str(line.trim());
                }
                _ => records.push(line.to_owned()),
            }
        }
        records
            .into_iter()
            .filter(|r| (r.contains(" ERROR ") || r.contains(" WARN ")) && r.contains(needle))
            .collect()
    }
}

impl Process {
    /// How many warnings and errors it logged, and the first few.
    pub fn problems_summary(&self) -> String {
        let problems = self.problems_logged("");
        let shown: Vec<String> = problems
            .iter()
            .take(4)
            .map(|l| l.chars().take(600).collect())
            .collect();
        format!(
            "--- {}: {} warnings/errors, first: {shown:#?}",
            self.name,
            problems.len()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A direct connection to the test database, for reading what the API does not show.
pub enum Sql {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

impl Sql {
    pub fn connect(url: &str) -> Self {
        match url.strip_prefix("sqlite://") {
            Some(path) => Self::Sqlite(SqliteConnection::establish(path).unwrap()),
            None => Self::Pg(kernel::db::establish_postgres(url).unwrap()),
        }
    }

    /// Rows of `query` (SQL both databases accept).
    pub fn rows<T>(&mut self, query: &str) -> Vec<T>
    where
        T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    {
        let loaded = match self {
            Self::Pg(conn) => diesel::sql_query(query).load(conn),
            Self::Sqlite(conn) => diesel::sql_query(query).load(conn),
        };
        loaded.unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// A single count.
    pub fn count(&mut self, query: &str) -> i64 {
        self.try_count(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// A single count, or the error (SQLite may be busy while the binary writes).
    pub fn try_count(&mut self, query: &str) -> Result<i64, diesel::result::Error> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows: Vec<N> = match self {
            Self::Pg(conn) => diesel::sql_query(query).load(conn)?,
            Self::Sqlite(conn) => diesel::sql_query(query).load(conn)?,
        };
        Ok(rows.first().map_or(0, |r| r.n))
    }
}

/// A tiny seeded generator: fault tests print their seed, so a failing run can be replayed
/// with `TESSERA_FAULT_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> (Self, u64) {
        let seed = std::env::var("TESSERA_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 | 1);
        (Self(seed), seed)
    }

    pub fn from_seed(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
