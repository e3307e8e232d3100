//! `identity-service`: parse the command line, load the configuration (exit 2 when it is
//! invalid), then serve or print the effective configuration.

use std::process::ExitCode;

use clap::Parser;
use identity_service::cli::{Cli, Command};
use identity_service::startup::Application;
use identity_service::{config, crypto, http_client, metrics, telemetry};

/// mimalloc: per-thread free lists suit actix's one-thread-per-worker requests (glibc
/// malloc was about a tenth of a request's CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before the configuration reads any key: jsonwebtoken's first use fixes its provider.
    crypto::jose::install();
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
    // aws-lc-rs is the only rustls crypto provider built in; naming it keeps TLS users
    // that ask for "the default" (the Redis client) from guessing.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // `[telemetry] otlp_endpoint`: the trace export, shut down (flushed) before exit.
    let mut traces = match &config.telemetry.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let dropped = metrics::trace_spans_dropped()
                .cloned()
                .ok_or_else(|| "cannot set up the dropped-span counter".to_owned());
            match dropped.and_then(|dropped| {
                let http = http_client::build(&config.tls)?;
                telemetry::traces::Traces::start(&config.telemetry, endpoint, http, dropped)
            }) {
                Ok(traces) => Some(traces),
                Err(error) => {
                    eprintln!("identity-service: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    // Kept until the end of `serve`: dropping it flushes the queued log lines.
    let _log_guard = telemetry::init_with_traces(&config.log, traces.as_ref());
    let result = actix_web::rt::System::new().block_on(async move {
        // Listen for SIGTERM/SIGINT before the port opens: actix installs its own handlers
        // only once the server runs, and a signal in between would kill the process.
        let stop_signal =
            stop_signal().map_err(|error| format!("cannot listen for signals: {error}"))?;
        let application = Application::build(config).await?;
        tracing::info!(port = application.port(), "identity-service listening");
        let handle = application.handle();
        actix_web::rt::spawn(async move {
            stop_signal.await;
            tracing::info!("stopping: finishing in-flight requests");
            handle.stop(true).await;
        });
        application
            .run_until_stopped()
            .await
            .map_err(|error| error.to_string())
    });
    if let Some(traces) = traces.as_mut() {
        traces.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("identity-service: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT; the listeners exist from the call on.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
