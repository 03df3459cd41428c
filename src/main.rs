//! The `clarion` binary: parse flags, load the config, start the server.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing
)]

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use clarion::cli::{Cli, Command};
use clarion::config::{Config, Validated};
use clarion::server::StartError;
use clarion::Server;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal, so redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // tungstenite logs whole frames at TRACE (payloads of private-encrypted- channels
    // included); those records never reach the log, whatever RUST_LOG asks for.
    let no_frame_dumps = tracing_subscriber::filter::filter_fn(|meta| {
        !(*meta.level() == tracing::Level::TRACE
            && (meta.target().starts_with("tungstenite")
                || meta.target().starts_with("tokio_tungstenite")))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().finish().with(no_frame_dumps).init();
    } else {
        builder.finish().with(no_frame_dumps).init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::CheckConfig { file }) => return check_config(cli, file),
        Some(Command::Probe { url }) => return probe(&url).await,
        Some(Command::Laravel(args)) => {
            return match clarion::cli::laravel::run(&args) {
                Ok(text) => {
                    print!("{text}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("clarion laravel: {e}");
                    std::process::ExitCode::from(1)
                }
            }
        }
        Some(command) => return client(command).await,
        None => {}
    }
    let checked = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clarion: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let config = checked.config.clone();
    init_logging(&config.log_format);
    if !config.soketi.taken.is_empty() {
        tracing::info!(
            variables = %config.soketi.taken.join(", "),
            "taken from the Soketi environment (CLARION_* and flags still win)"
        );
    }
    for (name, why) in &config.soketi.unsupported {
        tracing::warn!(variable = %name, "a Soketi setting Clarion does not support: {why}");
    }
    if config.using_development_app {
        tracing::warn!(
            "no app configured: using the development app (id \"app-id\", key \"app-key\", secret \"app-secret\"); configure [[apps]] before going to production"
        );
    }
    let server = match Server::start(checked).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("clarion: {e}");
            let code = match e {
                StartError::Config(_) => 2,
                StartError::Adapter(_) | StartError::Bind { .. } => 1,
            };
            return std::process::ExitCode::from(code);
        }
    };
    match server.local_addr() {
        Ok(addr) => tracing::info!(%addr, apps = config.apps.len(), "clarion listening"),
        Err(e) => tracing::warn!(error = %e, "clarion listening on an unknown address"),
    }
    spawn_reload_on_sighup(cli.clone(), server.state());
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

/// `clarion check-config FILE`: validate and print the effective settings, secrets masked.
fn check_config(mut cli: Cli, file: std::path::PathBuf) -> std::process::ExitCode {
    cli.config = Some(file.clone());
    match Config::load(&cli) {
        Ok(Validated { config, .. }) => {
            println!(
                "# {}: valid. Effective settings (secrets masked):",
                file.display()
            );
            if config.using_development_app {
                println!("# no app configured: the development app would be used");
            }
            print!("{}", config.masked_toml());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clarion: configuration error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `clarion probe URL`: exit 0 when the URL answers 2xx within 3 s (a container HEALTHCHECK on
/// an image without curl), 1 with the reason otherwise.
async fn probe(url: &str) -> std::process::ExitCode {
    let uri = match url.parse::<hyper::Uri>() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("clarion probe: {url:?} is not a URL: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let timeout = std::time::Duration::from_secs(3);
    match clarion::net::http_client::request("GET", &uri, &[], bytes::Bytes::new(), timeout).await {
        Ok((status, _)) if (200..300).contains(&status) => std::process::ExitCode::SUCCESS,
        Ok((status, _)) => {
            eprintln!("clarion probe: {url} answered {status}");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("clarion probe: {url}: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// SIGHUP re-reads the configuration and applies its app list. An invalid new configuration
/// is refused with one log line and the running apps stay. Server-level settings (address,
/// timeouts, adapter) need a restart.
fn spawn_reload_on_sighup(cli: Cli, state: std::sync::Arc<clarion::state::State>) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: config reload disabled");
            return;
        };
        while hup.recv().await.is_some() {
            match Config::load(&cli).map(|c| c.apps) {
                Ok(apps) => clarion::server::reload_apps(&state, apps),
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload refused; keeping the current apps")
                }
            }
            if let Some(tls) = &state.tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate reload refused; keeping the current one")
                    }
                }
            }
        }
    });
}

/// `clarion trigger` / `channels` / `channel` / `users`: print the answer, exit 1 on failure.
async fn client(command: Command) -> std::process::ExitCode {
    let answer = match &command {
        Command::Trigger(t) => clarion::cli::client::trigger(t).await,
        Command::Channels(c) => clarion::cli::client::channels(c).await,
        Command::Channel(c) => clarion::cli::client::channel(c).await,
        Command::Users(c) => clarion::cli::client::users(c).await,
        Command::History(h) => clarion::cli::client::history(h).await,
        // `main` handles check-config before any command reaches here.
        #[allow(clippy::unreachable)]
        Command::CheckConfig { .. } | Command::Laravel(_) | Command::Probe { .. } => {
            unreachable!("handled before")
        }
    };
    if answer.ok {
        println!("{}", answer.text);
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("clarion: {}", answer.text);
        std::process::ExitCode::from(1)
    }
}
