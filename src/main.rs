//! `identity-service`: parse the command line, load the configuration (exit 2 when it is
//! invalid), then serve or print the effective configuration.

use std::process::ExitCode;

use clap::Parser;
use identity_service::cli::{Cli, Command};
use identity_service::startup::Application;
use identity_service::{config, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(cli.config.as_deref(), config::process_env()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("identity-service: invalid configuration:\n{error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", config.to_masked_toml());
            ExitCode::SUCCESS
        }
        Command::Serve => serve(config),
    }
}

fn serve(config: config::Config) -> ExitCode {
    // Two rustls crypto providers end up compiled in; pick one before any TLS use.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    telemetry::init();
    let result = actix_web::rt::System::new().block_on(async move {
        let application = Application::build(config).await?;
        tracing::info!(port = application.port(), "identity-service listening");
        application
            .run_until_stopped()
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("identity-service: {error}");
            ExitCode::FAILURE
        }
    }
}
