//! A Laravel app's `.env`, read the way Laravel reads it (dotenvy: quotes, `${VAR}` references,
//! comments), for `--env-file` and `clarion laravel`. Only what pointing Laravel at a Pusher
//! server involves is looked at: the app's credentials (`REVERB_APP_*`, else `PUSHER_APP_*`)
//! and Reverb's server port.

use std::collections::BTreeMap;
use std::path::Path;

/// The variables of one `.env` file, in file order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct DotEnv {
    pub vars: BTreeMap<String, String>,
    /// Keys in the order the file has them (for appending after the last one).
    pub order: Vec<String>,
}

/// An app's credentials and which variables they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// `REVERB` or `PUSHER`.
    pub prefix: &'static str,
}

impl DotEnv {
    /// Reads `path`; an unreadable or malformed file is an error naming it and the line.
    pub fn read(path: &Path) -> Result<DotEnv, String> {
        let iter = dotenvy::from_path_iter(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut env = DotEnv::default();
        for item in iter {
            let (k, v) = item.map_err(|e| format!("{}: {e}", path.display()))?;
            if !env.vars.contains_key(&k) {
                env.order.push(k.clone());
            }
            env.vars.insert(k, v);
        }
        Ok(env)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The app: `REVERB_APP_ID/KEY/SECRET`, else `PUSHER_APP_ID/KEY/SECRET`; `None` when the
    /// file has neither, an error when a set is incomplete (naming what is missing).
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        for prefix in ["REVERB", "PUSHER"] {
            let names = ["ID", "KEY", "SECRET"].map(|p| format!("{prefix}_APP_{p}"));
            let values: Vec<Option<&str>> = names.iter().map(|n| self.get(n)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let missing: Vec<&str> = names
                .iter()
                .zip(&values)
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(format!("{} is missing or empty", missing.join(", ")));
            }
            let [id, key, secret] = [0, 1, 2].map(|i| {
                values
                    .get(i)
                    .copied()
                    .flatten()
                    .unwrap_or_default()
                    .to_string()
            });
            return Ok(Some(Credentials {
                id,
                key,
                secret,
                prefix: if prefix == "REVERB" {
                    "REVERB"
                } else {
                    "PUSHER"
                },
            }));
        }
        Ok(None)
    }

    /// `REVERB_SERVER_PORT`, the port `php artisan reverb:start` would listen on.
    pub fn server_port(&self) -> Result<Option<u16>, String> {
        match self.get("REVERB_SERVER_PORT") {
            None => Ok(None),
            Some(p) => p
                .parse()
                .map(Some)
                .map_err(|_| format!("REVERB_SERVER_PORT: {p:?} is not a port")),
        }
    }
}
