//! Flags, variables and keys: `docs/configuration.md` against `clarion --help`,
//! `config.example.toml` and the defaults of `Config`, `App` and `Webhook`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use super::{fail_on, read, table_rows};

/// `clarion --help`, with no `CLARION_*` variable set so that no value is shown.
fn help() -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clarion"));
    cmd.arg("--help");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CLARION_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("run clarion --help");
    assert!(out.status.success(), "clarion --help failed: {out:?}");
    String::from_utf8(out.stdout).expect("--help prints UTF-8")
}

/// Long flags (`--max-message-size`) in a text: `--` not preceded by a word character or a dash,
/// followed by a lowercase letter; `--app-*` (a family of flags) is not one.
fn flags(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("--").map(|p| p + i) {
        i = at + 2;
        let before_ok = at == 0 || {
            let b = bytes[at - 1];
            !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !before_ok || !bytes.get(at + 2).is_some_and(u8::is_ascii_lowercase) {
            continue;
        }
        let end = text[at + 2..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .map_or(text.len(), |p| p + at + 2);
        // `--app-*` names a family of flags, not a flag.
        if !text[end..].starts_with('*') {
            out.insert(text[at..end].trim_end_matches('-').to_string());
        }
        i = end;
    }
    out
}

/// `CLARION_*` environment variable names in a text (`CLARION_*` itself is not a name).
fn variables(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("CLARION_").map(|p| p + i) {
        i = at + "CLARION_".len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let end = text[i..]
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |p| p + i);
        let name = text[at..end].trim_end_matches('_');
        if name.len() > "CLARION".len() {
            out.insert(name.to_string());
        }
        i = end;
    }
    out
}

/// Each long flag of `--help` with the variable clap prints for it (`[env: NAME=]`), if any.
fn help_pairs(help: &str) -> BTreeMap<String, Option<String>> {
    let mut pairs = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with('-') {
            current = flags(t.split("  ").next().unwrap_or(t)).into_iter().next();
            if let Some(flag) = &current {
                pairs.insert(flag.clone(), None);
            }
        }
        if let (Some(flag), Some(var)) = (&current, variables(t).into_iter().next()) {
            if t.contains("[env: ") {
                pairs.insert(flag.clone(), Some(var));
            }
        }
    }
    pairs
}

#[test]
fn every_flag_and_variable_of_help_is_in_configuration_md_and_back() {
    let help = help();
    let doc = read("docs/configuration.md");
    let mut problems = Vec::new();

    let (help_flags, doc_flags) = (flags(&help), flags(&doc));
    let (help_vars, doc_vars) = (variables(&help), variables(&doc));
    assert!(
        help_flags.len() >= 20 && help_vars.len() >= 20,
        "clarion --help parsed into too few flags ({help_flags:?}) or variables ({help_vars:?})"
    );
    for f in help_flags.difference(&doc_flags) {
        problems.push(format!(
            "`clarion --help` lists {f}, docs/configuration.md does not"
        ));
    }
    for f in doc_flags.difference(&help_flags) {
        problems.push(format!(
            "docs/configuration.md names {f}, which `clarion --help` does not list"
        ));
    }
    for v in help_vars.difference(&doc_vars) {
        problems.push(format!(
            "`clarion --help` lists {v}, docs/configuration.md does not"
        ));
    }
    for v in doc_vars.difference(&help_vars) {
        problems.push(format!(
            "docs/configuration.md names {v}, which `clarion --help` does not list"
        ));
    }

    // A flag and its variable are documented together, on one table row.
    let rows = table_rows(&doc);
    for (flag, var) in help_pairs(&help) {
        let Some(var) = var else { continue };
        let together = rows.iter().any(|row| {
            let text = row.join("|");
            flags(&text).contains(&flag) && variables(&text).contains(&var)
        });
        if !together {
            problems.push(format!(
                "docs/configuration.md has no table row with both {flag} and {var}"
            ));
        }
    }
    fail_on(&problems, "docs/configuration.md against `clarion --help`");
}

/// A `key = value` line of `config.example.toml`.
struct ExampleKey {
    table: &'static str,
    key: String,
    value: String,
    required: bool,
}

/// The keys `config.example.toml` sets: top level, then the (first, uncommented) `[[apps]]`.
/// A key whose comment says "No default" is required.
fn example_keys(text: &str) -> Vec<ExampleKey> {
    let mut keys = Vec::new();
    let mut table = Some("server");
    let mut comment = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            comment.clear();
        } else if let Some(c) = t.strip_prefix('#') {
            comment.push_str(c);
            comment.push('\n');
        } else if t.starts_with('[') {
            table = (t == "[[apps]]").then_some("[[apps]]");
            comment.clear();
        } else if let (Some(table), Some((key, value))) = (table, t.split_once('=')) {
            keys.push(ExampleKey {
                table,
                key: key.trim().to_string(),
                value: value.trim().to_string(),
                required: comment.contains("No default"),
            });
        }
    }
    keys
}

/// The keys of a serialized default value (`Config::default()`, …) with their TOML text.
fn default_keys<T: serde::Serialize>(value: T) -> BTreeMap<String, String> {
    let value = toml::Value::try_from(value).expect("serializes to TOML");
    value
        .as_table()
        .expect("a table")
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

#[test]
fn every_config_key_is_in_configuration_md_with_its_default() {
    use clarion::app::{App, Webhook};
    use clarion::config::Config;

    let doc = read("docs/configuration.md");
    let rows = table_rows(&doc);
    let rows_of = |key: &str| -> Vec<&Vec<String>> {
        let cell = format!("`{key}`");
        rows.iter()
            .filter(|r| r.first().is_some_and(|c| *c == cell))
            .collect()
    };
    let mut problems = Vec::new();

    // As config.example.toml shows them.
    let example = example_keys(&read("config.example.toml"));
    assert!(
        example.len() >= 40,
        "config.example.toml parsed into only {} keys",
        example.len()
    );
    let required: BTreeSet<&str> = example
        .iter()
        .filter(|k| k.required)
        .map(|k| k.key.as_str())
        .collect();
    for k in &example {
        let found = rows_of(&k.key);
        if found.is_empty() {
            problems.push(format!(
                "{} key `{}` of config.example.toml has no row in docs/configuration.md",
                k.table, k.key
            ));
            continue;
        }
        let (expected, shown) = if k.required {
            (
                "required".to_string(),
                "required (\"No default\")".to_string(),
            )
        } else {
            (format!("`{}`", k.value), format!("`{}`", k.value))
        };
        if !found
            .iter()
            .any(|r| r.iter().skip(1).any(|c| c.contains(&expected)))
        {
            problems.push(format!(
                "{} key `{}`: docs/configuration.md does not show its default {shown} as config.example.toml does",
                k.table, k.key
            ));
        }
    }

    // As the code defines them, so a key missing from the example is caught here too.
    let code = [
        ("server", default_keys(Config::default())),
        ("[[apps]]", default_keys(App::default())),
    ];
    for (table, keys) in code {
        for (key, default) in keys {
            let found = rows_of(&key);
            if found.is_empty() {
                problems.push(format!(
                    "{table} key `{key}` (in the code) has no row in docs/configuration.md"
                ));
            } else if !required.contains(key.as_str()) {
                let shown = format!("`{default}`");
                if !found
                    .iter()
                    .any(|r| r.iter().skip(1).any(|c| c.contains(&shown)))
                {
                    problems.push(format!(
                        "{table} key `{key}`: docs/configuration.md does not show the code's default {shown}"
                    ));
                }
            }
        }
    }
    for key in default_keys(Webhook::default()).keys() {
        if rows_of(key).is_empty() {
            problems.push(format!(
                "[[apps.webhooks]] key `{key}` has no row in docs/configuration.md"
            ));
        }
    }
    fail_on(&problems, "docs/configuration.md against the config keys");
}

#[test]
fn the_help_parsers_find_what_they_should() {
    assert_eq!(
        flags(
            "`-p`, `--port PORT` or --app-id; not a---b, x--y, `---`, -- alone, --Upper, `--app-*`"
        ),
        BTreeSet::from(["--port".to_string(), "--app-id".to_string()])
    );
    assert_eq!(
        variables("`CLARION_*`, CLARION_HOST=, [env: CLARION_APP_SECRET], XCLARION_NO"),
        BTreeSet::from(["CLARION_HOST".to_string(), "CLARION_APP_SECRET".to_string()])
    );
    let pairs = help_pairs(
        "  -p, --port <PORT>\n          Port [default: 6001] [env: CLARION_PORT=]\n  -h, --help\n          Print help\n",
    );
    assert_eq!(pairs.get("--port"), Some(&Some("CLARION_PORT".to_string())));
    assert_eq!(pairs.get("--help"), Some(&None));
}
