//! The `clarion` binary: parse flags, load the config, start the server.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use clarion::cli::Cli;
use clarion::config::Config;
use clarion::Server;

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal, so redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clarion: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log_format);
    if config.using_development_app {
        tracing::warn!(
            "no app configured: using the development app (id \"app-id\", key \"app-key\", secret \"app-secret\"); configure [[apps]] before going to production"
        );
    }
    let server = match Server::bind(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "clarion: cannot listen on {}:{}: {e}",
                config.host, config.port
            );
            return std::process::ExitCode::from(1);
        }
    };
    match server.local_addr() {
        Ok(addr) => tracing::info!(%addr, apps = config.apps.len(), "clarion listening"),
        Err(e) => tracing::warn!(error = %e, "clarion listening on an unknown address"),
    }
    server
        .run_until(async {
            shutdown_signal().await;
            tracing::info!("shutting down gracefully; a second signal exits at once");
            tokio::spawn(async {
                shutdown_signal().await;
                eprintln!("clarion: second signal, exiting now");
                std::process::exit(1);
            });
        })
        .await;
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
