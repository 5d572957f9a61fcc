//! Waking relays in other processes on PostgreSQL (`LISTEN`/`NOTIFY`).
//!
//! A commit that published wakes this process's relay directly. Relays of other processes on
//! the same database (replicas) hear of it through a notification on [`CHANNEL`]; their poll
//! stays as the fallback.
//!
//! The `NOTIFY` is sent after the commit, from a connection of its own, and at most once per
//! [`TICK`]: PostgreSQL serializes the commits of transactions that notify (they hold a
//! database-wide lock through their commit), so a `NOTIFY` inside every publishing
//! transaction would line up all writers behind one WAL flush at a time. diesel offers no
//! blocking wait on the socket, so the same thread reads arrived notifications every
//! [`TICK`] (a local, non-blocking read; no round trip to the server).

use std::{
    sync::{
        Weak,
        mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use diesel::{pg::PgConnection, prelude::*, sql_types::Integer};

use super::{Bus, Inner};
use crate::db::{Backend, DbConnection};

/// The notification channel every Tessera process on one database listens on.
pub(crate) const CHANNEL: &str = "tessera_bus";

/// How often the thread looks for notifications, and the least time between two of its own.
const TICK: Duration = Duration::from_millis(25);

/// How long to wait before connecting again after the connection failed.
const RECONNECT: Duration = Duration::from_secs(2);

impl Bus {
    /// Tells relays in other processes that deliveries are due (PostgreSQL only; coalesced).
    pub(super) fn signal_other_processes(&self) {
        if let Some(signal) = self.wake_thread() {
            // A full channel already carries a pending signal: this one coalesces into it.
            let _ = signal.try_send(());
        }
    }

    /// Starts listening for other processes' commits (PostgreSQL only), for the relay.
    pub(super) fn listen_for_other_processes(&self) {
        let _ = self.wake_thread();
    }

    /// The thread that sends and receives notifications, started on first use.
    fn wake_thread(&self) -> Option<&SyncSender<()>> {
        if self.db().backend() != Backend::Postgres {
            return None;
        }
        Some(self.inner.signal.get_or_init(|| {
            let (signal, signals) = sync_channel(1);
            let bus = std::sync::Arc::downgrade(&self.inner);
            let started = std::thread::Builder::new()
                .name("tessera-bus-notify".into())
                .spawn(move || run(&bus, &signals));
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start the bus notification thread; relays of other processes rely on their poll");
            }
            signal
        }))
    }
}

/// A listening session: the connection and its server process id (its own notifications
/// are not news).
struct Session {
    conn: PgConnection,
    pid: i32,
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn connect(bus: &Bus) -> anyhow::Result<Session> {
    let DbConnection::Postgresql(mut conn) = bus.db().open_unpooled()? else {
        anyhow::bail!("not a PostgreSQL database");
    };
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .context("LISTEN")?;
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut conn)
        .context("read the backend pid")?
        .pid;
    Ok(Session { conn, pid })
}

/// The thread's loop; it ends when the bus is dropped.
fn run(bus: &Weak<Inner>, signals: &Receiver<()>) {
    let mut session: Option<Session> = None;
    let mut retry_at = Instant::now();
    let mut pending = false;
    let mut last_sent: Option<Instant> = None;
    loop {
        match signals.recv_timeout(TICK) {
            Ok(()) => pending = true,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = bus.upgrade() else { return };
        let bus = Bus { inner };
        if session.is_none() && Instant::now() >= retry_at {
            match connect(&bus) {
                Ok(s) => session = Some(s),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot listen for other processes' events; their relays rely on the poll");
                    retry_at = Instant::now() + RECONNECT;
                }
            }
        }
        let Some(s) = session.as_mut() else { continue };
        if pending && last_sent.is_none_or(|t| t.elapsed() >= TICK) {
            pending = false;
            last_sent = Some(Instant::now());
            if let Err(e) = diesel::sql_query(format!("NOTIFY {CHANNEL}")).execute(&mut s.conn) {
                tracing::debug!(error = %e, "NOTIFY failed; reconnecting");
                session = None;
                continue;
            }
        }
        let mut news = false;
        let mut broken = false;
        for notification in s.conn.notifications_iter() {
            match notification {
                Ok(n) => news |= n.process_id != s.pid,
                Err(e) => {
                    tracing::debug!(error = %e, "the notification session broke; reconnecting");
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            session = None;
            retry_at = Instant::now() + RECONNECT;
        }
        if news {
            bus.wake_relay();
        }
    }
}
