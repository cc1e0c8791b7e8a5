use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kratos_passkeys::association_files::{AssociationFiles, WellKnownFile};
use kratos_passkeys::configuration::{self, Environment, TracingSettings};
use kratos_passkeys::domain::IdentityId;
use kratos_passkeys::metrics::Metrics;
use kratos_passkeys::migration::{
    self, export::export_to_kratos, import::import_from_kratos, Progress,
};
use kratos_passkeys::startup::Application;
use kratos_passkeys::state::AppState;
use kratos_passkeys::store::Store;
use kratos_passkeys::telemetry::{self, LogFormat};

/// Passkeys beside a self-hosted Ory Kratos.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Directory holding base.yaml and <environment>.yaml.
    #[arg(long, env = "KRATOS_PASSKEYS_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    /// Which environment file layers over base.yaml: local or production.
    #[arg(long, env = "KRATOS_PASSKEYS_ENVIRONMENT", default_value = "local")]
    environment: String,
    #[arg(
        long,
        env = "KRATOS_PASSKEYS_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and admin listeners.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Purge the marks of expired ceremonies and the passkeys of identities
    /// Kratos no longer has, then exit.
    Gc,
    /// Import the passkeys Kratos registered (its `passkey` and passwordless
    /// `webauthn` credentials), keeping their user handles. Idempotent.
    ImportKratos(MigrationArgs),
    /// Write this service's passkeys into Kratos's own WebAuthn credentials
    /// (Kratos v25.4.0 and later). Idempotent.
    ExportKratos(MigrationArgs),
    /// Print a well-known file exactly as the service serves it, for a
    /// relying-party site that serves `/.well-known/` itself.
    WellKnown {
        #[arg(value_enum)]
        file: WellKnownArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum WellKnownArg {
    PasskeyEndpoints,
    AppleAppSiteAssociation,
    Assetlinks,
}

impl From<WellKnownArg> for WellKnownFile {
    fn from(arg: WellKnownArg) -> Self {
        match arg {
            WellKnownArg::PasskeyEndpoints => Self::PasskeyEndpoints,
            WellKnownArg::AppleAppSiteAssociation => Self::AppleAppSiteAssociation,
            WellKnownArg::Assetlinks => Self::Assetlinks,
        }
    }
}

#[derive(clap::Args)]
struct MigrationArgs {
    /// Decide everything and print the summary, but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this Kratos identity.
    #[arg(long, value_name = "ID")]
    identity: Option<uuid::Uuid>,
}

impl MigrationArgs {
    fn options(&self) -> migration::Options {
        migration::Options {
            dry_run: self.dry_run,
            identity: self.identity.map(IdentityId::new),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Environment::try_from(cli.environment.clone())
        .map_err(anyhow::Error::msg)
        .and_then(|environment| Ok(configuration::load(&cli.config_dir, environment)?))
    {
        Ok(settings) => settings,
        Err(error) => {
            // Logged as every other error is, with tracing as it defaults.
            let _telemetry = telemetry::init(cli.log_format, &TracingSettings::default());
            tracing::error!("{error:#}");
            return ExitCode::FAILURE;
        }
    };
    // Held until the end: dropping it flushes the last spans.
    let _telemetry = match telemetry::init(cli.log_format, &settings.tracing) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("{:#}", anyhow::Error::new(error));
            return ExitCode::FAILURE;
        }
    };
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: configuration::Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(
                public_port = app.public_port(),
                admin_port = app.admin_port(),
                "kratos-passkeys is serving"
            );
            app.run_until_stopped().await?;
        }
        Command::Gc => {
            // No login is served here, so the login record worker is not run.
            let (state, _) = AppState::new(settings)?;
            let collected = kratos_passkeys::gc::collect(&state).await?;
            tracing::info!(?collected, "garbage collected");
        }
        Command::ImportKratos(args) => {
            let (state, _) = AppState::new(settings)?;
            let progress = Progress::on_terminal("scanned in Kratos");
            let summary = import_from_kratos(
                &state.kratos,
                &state.store,
                &state.events,
                args.options(),
                &progress,
            )
            .await?;
            println!("{summary}");
        }
        Command::ExportKratos(args) => {
            let (state, _) = AppState::new(settings)?;
            let progress = Progress::on_terminal("exported to Kratos");
            let summary = export_to_kratos(
                &state.kratos,
                &state.store,
                &state.events,
                args.options(),
                &progress,
            )
            .await?;
            println!("{summary}");
        }
        Command::WellKnown { file } => {
            let file = WellKnownFile::from(file);
            let files = AssociationFiles::build(&settings.webauthn)?;
            let bytes = files
                .get(file)
                .with_context(|| format!("{} is not configured", file.path()))?;
            std::io::stdout()
                .write_all(bytes)
                .context("writing to stdout")?;
        }
        Command::Migrate => {
            let metrics = std::sync::Arc::new(Metrics::new()?);
            let applied = Store::connect_lazy(&settings.database, metrics)
                .migrate()
                .await?;
            tracing::info!(?applied, "migrations are up to date");
        }
    }
    Ok(())
}
