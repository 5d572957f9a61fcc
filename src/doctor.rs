//! `tessera doctor`: checks what the server needs and says what is wrong in plain words.

use kernel::{bus::nats::Nats, config::Settings, db::Db};

use crate::{modules, wiring};

/// Checks configuration (the modules' settings and start-up checks, and how each neighbour a
/// module calls is reached), database, migrations and NATS, changing nothing but creating an
/// empty SQLite file where none exists yet. Returns the report and whether everything is
/// fine.
pub async fn doctor(settings: &Settings) -> (String, bool) {
    let mut report = String::new();
    let mut healthy = true;
    let mut line = |ok: bool, text: String| {
        healthy &= ok;
        report.push_str(if ok { "ok    " } else { "FAIL  " });
        report.push_str(&text);
        report.push('\n');
    };
    line(
        true,
        format!("configuration loads (TESSERA_ENV={})", settings.env),
    );
    line(
        true,
        format!("modules built in: {}", modules::names().join(", ")),
    );
    for check in wiring::settings_checks(settings) {
        match check {
            Ok(how) => line(true, how),
            Err(what) => line(false, what),
        }
    }
    match Db::connect(&settings.database) {
        Ok(db) => {
            line(
                true,
                format!(
                    "database reachable: {}",
                    kernel::db::redact_url(&settings.database.url)
                ),
            );
            match db.pending_migrations(&modules::migrations()) {
                Ok(pending) if pending.is_empty() => line(true, "migrations: all applied".into()),
                Ok(pending) => line(
                    false,
                    format!(
                        "migrations: {} pending ({}); run `tessera migrate` (the server also applies them at start)",
                        pending.len(),
                        pending.join(", ")
                    ),
                ),
                Err(e) => line(false, format!("migrations: {e:#}")),
            }
        }
        Err(e) => line(false, format!("database: {e:#}")),
    }
    match &settings.bus.nats_url {
        None => line(
            true,
            "events: in-process (no TESSERA__BUS__NATS_URL)".into(),
        ),
        Some(url) => {
            let timeout =
                std::time::Duration::from_secs(settings.database.connect_timeout_secs.max(1));
            match Nats::connect(url, &settings.bus.subject_prefix, timeout).await {
                Ok(_) => line(true, format!("NATS JetStream reachable at {url}")),
                Err(e) => line(false, format!("NATS: {e:#}")),
            }
        }
    }
    (report, healthy)
}
