//! Links, paths and the rule index: every relative link resolves (anchors included), every
//! path of this repository named in backticks exists, every function the rule index of
//! `docs/protocol.md` names is where it says, and the README stays a front door.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{docs_files, fail_on, prose_lines, read, repo, table_rows};

const README_MAX_LINES: usize = 250;

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
fn the_markdown_parsers_find_what_they_should() {
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
    assert_eq!(
        expand_braces("src/{a, b}.rs"),
        ["src/a.rs".to_string(), "src/b.rs".to_string()]
    );
    assert_eq!(
        cited_functions("`src/a.rs` `f`, `T::g`; `tests/b.rs` `h` (and `x`)"),
        vec![
            (
                "src/a.rs".to_string(),
                vec!["f".to_string(), "T::g".to_string()]
            ),
            ("tests/b.rs".to_string(), vec!["h".to_string()]),
        ]
    );
}
