//! `clarion laravel PATH`: what a Laravel app needs to broadcast through this server, printed
//! (or, with `--write`, written into its `.env`), for the `reverb` or the `pusher` driver
//! (docs/laravel.md). The app's credentials are those already in the `.env` (`REVERB_APP_*`,
//! else `PUSHER_APP_*`), or new ones; Clarion then serves the same `.env` with `--env-file`,
//! so both sides read one source.

use std::path::{Path, PathBuf};

use super::dotenv::{Credentials, DotEnv};

/// `clarion laravel`.
#[derive(clap::Args, Debug, Clone)]
pub struct Laravel {
    /// The Laravel app's directory (with its .env), or the .env file itself.
    pub path: PathBuf,
    /// `reverb` (Laravel 11+) or `pusher`.
    #[arg(long, default_value = "reverb")]
    pub driver: String,
    /// The host Laravel and the browser reach Clarion at.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port Clarion listens on [default: REVERB_SERVER_PORT from the .env, else 6001].
    #[arg(long)]
    pub port: Option<u16>,
    /// `http`, or `https` when Clarion (or a proxy in front of it) serves TLS.
    #[arg(long, default_value = "http")]
    pub scheme: String,
    /// Write the lines into the .env (a copy of the old one is kept as .env.clarion-backup).
    #[arg(long)]
    pub write: bool,
}

/// The `.env` lines for `driver`, in the order a reader expects them.
pub fn env_lines(
    driver: &str,
    connection_key: &str,
    c: &Credentials,
    host: &str,
    port: u16,
    scheme: &str,
) -> Vec<(String, String)> {
    let p = if driver == "pusher" {
        "PUSHER"
    } else {
        "REVERB"
    };
    let mut lines = vec![
        (connection_key.to_string(), driver.to_string()),
        (format!("{p}_APP_ID"), c.id.clone()),
        (format!("{p}_APP_KEY"), c.key.clone()),
        (format!("{p}_APP_SECRET"), c.secret.clone()),
        (format!("{p}_HOST"), host.to_string()),
        (format!("{p}_PORT"), port.to_string()),
        (format!("{p}_SCHEME"), scheme.to_string()),
    ];
    if driver == "pusher" {
        // pusher-js refuses to start without a cluster; Clarion ignores it.
        lines.push(("PUSHER_APP_CLUSTER".into(), "mt1".into()));
    } else {
        // What `clarion --env-file` listens on.
        lines.push(("REVERB_SERVER_PORT".into(), port.to_string()));
    }
    let mut vite = vec!["APP_KEY", "HOST", "PORT", "SCHEME"];
    if driver == "pusher" {
        vite.push("APP_CLUSTER");
    }
    for v in vite {
        lines.push((format!("VITE_{p}_{v}"), format!("\"${{{p}_{v}}}\"")));
    }
    lines
}

/// The `config/broadcasting.php` connection for `driver`.
pub fn broadcasting_php(driver: &str) -> String {
    if driver == "pusher" {
        "'pusher' => [\n    'driver' => 'pusher',\n    'key' => env('PUSHER_APP_KEY'),\n    'secret' => env('PUSHER_APP_SECRET'),\n    'app_id' => env('PUSHER_APP_ID'),\n    'options' => [\n        'cluster' => env('PUSHER_APP_CLUSTER', 'mt1'),\n        'host' => env('PUSHER_HOST', '127.0.0.1'),\n        'port' => env('PUSHER_PORT', 6001),\n        'scheme' => env('PUSHER_SCHEME', 'http'),\n        'encrypted' => true,\n        'useTLS' => env('PUSHER_SCHEME', 'http') === 'https',\n    ],\n],\n".into()
    } else {
        "'reverb' => [\n    'driver' => 'reverb',\n    'key' => env('REVERB_APP_KEY'),\n    'secret' => env('REVERB_APP_SECRET'),\n    'app_id' => env('REVERB_APP_ID'),\n    'options' => [\n        'host' => env('REVERB_HOST', '127.0.0.1'),\n        'port' => env('REVERB_PORT', 6001),\n        'scheme' => env('REVERB_SCHEME', 'http'),\n        'useTLS' => env('REVERB_SCHEME', 'http') === 'https',\n    ],\n],\n".into()
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The `.env` with `lines` set: existing keys changed in place (the `VITE_…` references left as
/// they are when present), missing ones appended.
fn rewrite(text: &str, lines: &[(String, String)], existing: &DotEnv) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut changed = Vec::new();
    let mut done = std::collections::HashSet::new();
    for line in text.lines() {
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_start_matches("export ").trim());
        match key.and_then(|k| lines.iter().find(|(l, _)| l == k)) {
            Some((k, v)) if !done.contains(k) => {
                done.insert(k.clone());
                let keep = k.starts_with("VITE_") || existing.get(k) == Some(v.as_str());
                if keep {
                    out.push_str(line);
                } else {
                    out.push_str(&format!("{k}={v}"));
                    changed.push(k.clone());
                }
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    let missing: Vec<&(String, String)> = lines.iter().filter(|(k, _)| !done.contains(k)).collect();
    if !missing.is_empty() {
        out.push_str("\n# Broadcasting through Clarion (clarion laravel)\n");
        for (k, v) in missing {
            out.push_str(&format!("{k}={v}\n"));
            changed.push(k.clone());
        }
    }
    (out, changed)
}

/// Runs `clarion laravel`; the text to print, or why it could not.
pub fn run(args: &Laravel) -> Result<String, String> {
    if args.driver != "reverb" && args.driver != "pusher" {
        return Err(format!(
            "--driver: {:?} is neither reverb nor pusher",
            args.driver
        ));
    }
    let dot_env: PathBuf = if args.path.is_dir() {
        args.path.join(".env")
    } else {
        args.path.clone()
    };
    let existing = if dot_env.exists() {
        DotEnv::read(&dot_env)?
    } else {
        DotEnv::default()
    };
    let creds = match existing.credentials() {
        Ok(Some(c)) => c,
        Ok(None) => Credentials {
            id: (100_000 + rand::random::<u32>() % 900_000).to_string(),
            key: random_hex(10),
            secret: random_hex(16),
            prefix: "REVERB",
        },
        Err(e) => return Err(format!("{}: {e}", dot_env.display())),
    };
    let port = match args.port {
        Some(p) => p,
        None => existing
            .server_port()
            .map_err(|e| format!("{}: {e}", dot_env.display()))?
            .unwrap_or(6001),
    };
    // Laravel 10 and older call it BROADCAST_DRIVER.
    let connection_key = if existing.vars.contains_key("BROADCAST_DRIVER")
        && !existing.vars.contains_key("BROADCAST_CONNECTION")
    {
        "BROADCAST_DRIVER"
    } else {
        "BROADCAST_CONNECTION"
    };
    let lines = env_lines(
        &args.driver,
        connection_key,
        &creds,
        &args.host,
        port,
        &args.scheme,
    );
    let mut out = String::new();
    if args.write {
        let text = std::fs::read_to_string(&dot_env).unwrap_or_default();
        let (new, changed) = rewrite(&text, &lines, &existing);
        if changed.is_empty() {
            out.push_str(&format!(
                "{}: already set up for Clarion\n",
                dot_env.display()
            ));
        } else {
            if dot_env.exists() {
                let backup = dot_env.with_file_name(".env.clarion-backup");
                std::fs::copy(&dot_env, &backup)
                    .map_err(|e| format!("{}: cannot keep a copy: {e}", backup.display()))?;
            }
            std::fs::write(&dot_env, new)
                .map_err(|e| format!("{}: cannot write: {e}", dot_env.display()))?;
            out.push_str(&format!(
                "{}: set {}\n",
                dot_env.display(),
                changed.join(", ")
            ));
        }
    } else {
        out.push_str(&format!(
            "# {} for the {} driver:\n",
            dot_env.display(),
            args.driver
        ));
        for (k, v) in &lines {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    let php = dot_env
        .parent()
        .unwrap_or(Path::new("."))
        .join("config")
        .join("broadcasting.php");
    let has_connection = std::fs::read_to_string(&php)
        .map(|t| t.contains(&format!("'{}' =>", args.driver)))
        .unwrap_or(false);
    if !has_connection {
        out.push_str(&format!(
            "\n# {} needs this connection in its 'connections' array (php artisan install:broadcasting creates the file):\n{}",
            php.display(),
            broadcasting_php(&args.driver)
        ));
    }
    out.push_str(&format!(
        "\n# Then run Clarion on the same .env:\nclarion --env-file {}\n",
        dot_env.display()
    ));
    Ok(out)
}
