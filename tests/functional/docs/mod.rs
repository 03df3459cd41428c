//! Doc drift: the documentation must agree with the code it describes (`configuration`: flags,
//! variables and keys; `links`: links, paths, the rule index and the README's length).
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

use std::path::PathBuf;

mod configuration;
mod links;

pub(super) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(super) fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub(super) fn fail_on(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// Lines of markdown outside fenced code blocks.
pub(super) fn prose_lines(markdown: &str) -> Vec<&str> {
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
pub(super) fn table_rows(markdown: &str) -> Vec<Vec<String>> {
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

pub(super) fn docs_files() -> Vec<String> {
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
