//! Doc drift: the documentation must agree with the code it describes.
//!
//! * every flag and `CLARION_*` variable that `clarion --help` prints is in
//!   `docs/configuration.md`, on the same table row as each other, and every flag or variable
//!   that page names exists;
//! * every key of `config.example.toml` (and of `Config`, `App` and `Webhook`) has a row in
//!   `docs/configuration.md` showing its default as the example file shows it;
//! * every relative markdown link (`[text](path)`, `path#anchor`) in the README, CONTRIBUTING.md,
//!   ARCHITECTURE.md and `docs/*.md` points at a file that exists, and at a heading that exists
//!   when it names one;
//! * every path of this repository written in backticks (`src/ws/session.rs`,
//!   `tests/functional/http_api/`, with `{a,b}` alternatives) exists, in those files and
//!   SECURITY.md;
//! * every function the rule index of `docs/protocol.md` names after a Rust file is defined in
//!   that file;
//! * the README stays a front door: under 250 lines.
//!
//! Each test collects every problem and fails once, naming all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const README_MAX_LINES: usize = 250;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn fail_on(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

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

/// Lines of markdown outside fenced code blocks.
fn prose_lines(markdown: &str) -> Vec<&str> {
    let mut fenced = false;
    markdown
        .lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The table rows of a markdown text, as their trimmed cells.
fn table_rows(markdown: &str) -> Vec<Vec<String>> {
    prose_lines(markdown)
        .into_iter()
        .filter(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
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

/// GitHub's anchor for a heading: lowercase; letters, digits, `-` and `_` kept; spaces become
/// `-`; everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a markdown file's headings (`#`…`######`, outside code blocks), with GitHub's
/// `-1`, `-2` suffixes for repeated headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(markdown) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim());
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of inline markdown links and images, `[text](target)`, outside code blocks and
/// code spans.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(markdown) {
        // Drop code spans: odd-numbered pieces between backticks.
        let text: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, piece)| piece)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            match after.find(')') {
                Some(end) => {
                    out.push(after[..end].trim().to_string());
                    rest = &after[end..];
                }
                None => break,
            }
        }
    }
    out
}

fn docs_files() -> Vec<String> {
    let mut files: Vec<String> = ["README.md", "CONTRIBUTING.md", "ARCHITECTURE.md"]
        .map(String::from)
        .to_vec();
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 10, "docs/ holds only {docs:?}");
    files.extend(docs);
    files
}

#[test]
fn relative_links_in_the_documentation_resolve() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in docs_files() {
        let text = read(&file);
        let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            let target = target.split_whitespace().next().unwrap_or("").to_string();
            if target.is_empty()
                || target.contains("://")
                || target.starts_with("mailto:")
                || target.starts_with('<')
            {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                PathBuf::from(&file)
            } else {
                dir.join(path)
            };
            let on_disk = repo().join(&resolved);
            if !on_disk.exists() {
                problems.push(format!(
                    "{file}: link ({target}) points at {}, which does not exist",
                    resolved.display()
                ));
                continue;
            }
            let is_markdown = on_disk.extension().is_some_and(|e| e == "md");
            if let (Some(anchor), true) = (anchor, is_markdown) {
                let headings = anchors(&std::fs::read_to_string(&on_disk).unwrap_or_default());
                if !headings.contains(anchor) {
                    problems.push(format!(
                        "{file}: link ({target}): {} has no heading with the anchor #{anchor}",
                        resolved.display()
                    ));
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} relative links found");
    fail_on(&problems, "relative links in the documentation");
}

/// Expands `src/{a,b}.rs` into `src/a.rs` and `src/b.rs` (one pair of braces).
fn expand_braces(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => {
            let (head, rest) = path.split_at(open);
            let inner = &rest[1..close - open];
            let tail = &rest[close - open + 1..];
            inner
                .split(',')
                .map(|alt| format!("{head}{}{tail}", alt.trim()))
                .collect()
        }
        _ => vec![path.to_string()],
    }
}

/// Paths of this repository in backticks: under `src/` or `tests/`, naming a `.rs` file or a
/// directory (a trailing `/`). Other projects' paths (`.php`, `.ts`, globs) are not ours.
fn repo_paths(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, span) in markdown.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let ours = (span.starts_with("src/") || span.starts_with("tests/"))
            && (span.ends_with(".rs") || span.ends_with('/'))
            && !span.contains(['*', ' ', '…']);
        if ours {
            out.extend(expand_braces(span));
        }
    }
    out
}

#[test]
fn repository_paths_in_the_documentation_exist() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in docs_files().into_iter().chain(["SECURITY.md".to_string()]) {
        let text = read(&file);
        // ARCHITECTURE.md ends with where files were before they moved: old paths on purpose.
        let text = text.split("## Moved in issue 14").next().unwrap_or("");
        for path in repo_paths(text) {
            checked += 1;
            if !repo().join(&path).exists() {
                problems.push(format!("{file}: `{path}` does not exist"));
            }
        }
    }
    assert!(checked >= 100, "only {checked} paths found");
    fail_on(&problems, "paths in the documentation");
}

/// In a cell of the rule index, each Rust file with the functions named after it:
/// "`src/a.rs` `f`, `T::g`; `tests/b.rs` `h`" → [(src/a.rs, [f, T::g]), (tests/b.rs, [h])].
fn cited_functions(cell: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (i, span) in cell.split('`').enumerate() {
        if i % 2 == 0 {
            // Prose between spans ends a file's list unless it is only ", ".
            if !span.trim().trim_matches(',').trim().is_empty() && span.trim() != "," {
                if let Some(last) = out.last_mut() {
                    last.0.push('\0');
                }
            }
            continue;
        }
        if span.ends_with(".rs") && (span.starts_with("src/") || span.starts_with("tests/")) {
            out.push((span.to_string(), Vec::new()));
        } else if let Some((file, names)) = out.last_mut() {
            let is_name = span
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if !file.ends_with('\0') && is_name && !span.is_empty() {
                names.push(span.to_string());
            }
        }
    }
    out.into_iter()
        .map(|(f, n)| (f.trim_end_matches('\0').to_string(), n))
        .collect()
}

#[test]
fn functions_in_the_rule_index_exist_where_it_says() {
    let protocol = read("docs/protocol.md");
    let index = protocol
        .split("## Rule index")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/protocol.md has a rule index");
    let mut problems = Vec::new();
    let mut checked = 0;
    for row in table_rows(index) {
        for cell in row.iter().skip(1) {
            for (file, names) in cited_functions(cell) {
                let Ok(code) = std::fs::read_to_string(repo().join(&file)) else {
                    problems.push(format!("`{file}` does not exist"));
                    continue;
                };
                for name in names {
                    checked += 1;
                    let function = name.rsplit("::").next().unwrap_or(&name);
                    let defined = [
                        format!("fn {function}("),
                        format!("fn {function}<"),
                        format!("struct {function}"),
                        format!("enum {function}"),
                        format!("const {function}"),
                    ]
                    .iter()
                    .any(|d| code.contains(d.as_str()));
                    if !defined {
                        problems.push(format!("`{file}` defines no `{name}`"));
                    }
                }
            }
        }
    }
    assert!(
        checked >= 150,
        "only {checked} functions found in the rule index"
    );
    fail_on(&problems, "the rule index of docs/protocol.md");
}

#[test]
fn the_readme_is_a_front_door() {
    let lines = read("README.md").lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines; keep it under {README_MAX_LINES} (move details to docs/)"
    );
}

#[test]
fn the_parsers_of_this_file_find_what_they_should() {
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
    assert_eq!(
        slug("Webhook target keys (`[[apps.webhooks]]`)"),
        "webhook-target-keys-appswebhooks"
    );
    assert_eq!(
        slug("3.5 User sign-in and `#server-to-user-`"),
        "35-user-sign-in-and-server-to-user-"
    );
    assert_eq!(
        link_targets(
            "see [a](docs/a.md#x) and `[b](not/a/link)`, ![c](img.png)\n```\n[d](code)\n```"
        ),
        ["docs/a.md#x", "img.png"]
    );
    let pairs = help_pairs(
        "  -p, --port <PORT>\n          Port [default: 6001] [env: CLARION_PORT=]\n  -h, --help\n          Print help\n",
    );
    assert_eq!(pairs.get("--port"), Some(&Some("CLARION_PORT".to_string())));
    assert_eq!(pairs.get("--help"), Some(&None));
}
