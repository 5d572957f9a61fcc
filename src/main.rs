//! The `tessera` command: `serve` (the default), `migrate`, `openapi`, `events`, `modules`,
//! `config-keys`, `doctor`, `token`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kernel::{
    auth::{JwtKeys, Role},
    config::Settings,
};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Tessera: one binary, five modules")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document of this build.
    Openapi,
    /// Print the event catalog (AsyncAPI 3.0) of this build.
    Events,
    /// Print the module map (Markdown with a Mermaid flowchart), as in docs/modules.md.
    Modules,
    /// Print every configuration key with its default (Markdown), as in docs/configuration.md.
    ConfigKeys,
    /// Check configuration, database, migrations and NATS, and say what is wrong.
    Doctor,
    /// Print a signed JWT for the configured secret, and nothing else.
    Token {
        /// Subject (user or service name); must not be blank.
        #[arg(long, value_parser = subject)]
        sub: String,
        /// admin, clinician, customer or service.
        #[arg(long, value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<Role>()))]
        role: Role,
        /// Lifetime in seconds (default: auth.token_ttl_secs).
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// `--sub`: the server refuses tokens without a subject, so none is printed.
fn subject(s: &str) -> Result<String, &'static str> {
    if s.trim().is_empty() {
        Err("must name a user or service (it is blank)")
    } else {
        Ok(s.to_owned())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Logs may be filtered or JSON; the reason for a failed start must reach a person.
            eprintln!("tessera: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Openapi => {
            print!("{}", tessera::openapi_json()?);
            Ok(())
        }
        Command::Events => {
            print!("{}", tessera::asyncapi_json()?);
            Ok(())
        }
        Command::Doctor => {
            let settings = Settings::load()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let (report, healthy) = runtime.block_on(tessera::doctor(&settings));
            print!("{report}");
            if healthy {
                Ok(())
            } else {
                anyhow::bail!("some checks failed (see above)")
            }
        }
        Command::Modules => {
            print!("{}", tessera::module_map_markdown());
            Ok(())
        }
        Command::ConfigKeys => {
            print!("{}", tessera::configuration_markdown()?);
            Ok(())
        }
        Command::Token { sub, role, ttl } => {
            let settings = Settings::load()?;
            println!("{}", JwtKeys::new(&settings.auth).issue(&sub, role, ttl)?);
            Ok(())
        }
        Command::Migrate => {
            let settings = Settings::load()?;
            let _telemetry = kernel::telemetry::init(&settings.log, &service_name())?;
            let (_, applied) = tessera::connect_and_migrate(&settings)?;
            println!("applied {} migration(s)", applied.len());
            for version in applied {
                println!("  {version}");
            }
            Ok(())
        }
        Command::Serve => serve(),
    }
}

/// Every connection, database file and pooled connection is a file descriptor, and the usual
/// soft limit (1,024) is far below what a busy server needs while the hard limit is not.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(
            open_files = limit,
            "open-file limit raised to the hard limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// The default OpenTelemetry service name (`OTEL_SERVICE_NAME` overrides it): `tessera`, or
/// `tessera-<module>` for a single-module build.
fn service_name() -> String {
    match tessera::module_names().as_slice() {
        [module] => format!("tessera-{module}"),
        _ => "tessera".to_owned(),
    }
}

fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let telemetry = kernel::telemetry::init(&settings.log, &service_name())?;
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = tessera::Application::build(&settings).await?;
        let base = format!("http://{}:{}", settings.server.host, app.port());
        tracing::info!(
            env = %settings.env,
            modules = ?tessera::module_names(),
            database = %kernel::db::redact_url(&settings.database.url),
            "Tessera listening on {base} (Swagger UI: {base}/swagger-ui/, operator console: {base}/console/)"
        );
        app.run_until_stopped().await.context("server failed")
    })?;
    // The server has drained: send the spans still queued, off the runtime.
    telemetry.shutdown();
    Ok(())
}
