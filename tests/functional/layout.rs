//! The source layout keeps its promises (issue 14): the module table at the top of `src/lib.rs`
//! names every top-level module with what it may depend on, the code imports nothing else (so
//! there is no cycle), and no file under `src/` grows past 600 lines.
//!
//! Dependencies are read from `crate::` paths outside `#[cfg(test)]` items, as written; a
//! `use super::…` inside a module stays within it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of the library (the binaries under `src/bin/` and `main.rs` excluded).
fn library_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &mut out);
    out.retain(|p| !p.ends_with("main.rs") && !p.ends_with("lib.rs"));
    out.sort();
    out
}

/// The top-level module a file belongs to: `src/adapter/redis/bus.rs` → `adapter`.
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src/");
    let first = rel.components().next().expect("non-empty");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The text without `#[cfg(test)]` items and without `//` comments.
fn code_outside_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // Skip the next item: up to its closing brace (or its `;`).
            let mut depth = 0i64;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // e.g. `other_crate::…`, not ours
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

/// The module table of `src/lib.rs`: module → the modules it may depend on.
fn declared_layers() -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let mut table = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! | ") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        if cells.len() < 3 || cells[0].starts_with("module") || cells[0].starts_with("---") {
            continue;
        }
        let name = cells[0].trim_matches(|c| "[]`".contains(c)).to_string();
        let deps = cells[2].trim_end_matches(" |").trim();
        let deps: BTreeSet<String> = if deps == "—" {
            BTreeSet::new()
        } else if deps == "everything above" {
            table.keys().cloned().collect()
        } else {
            deps.split(", ").map(str::to_string).collect()
        };
        table.insert(name, deps);
    }
    table
}

#[test]
fn the_lib_rs_table_names_every_top_level_module() {
    let declared = declared_layers();
    let actual: BTreeSet<String> = library_files().iter().map(|p| top_module(p)).collect();
    let named: BTreeSet<String> = declared.keys().cloned().collect();
    assert_eq!(
        named, actual,
        "the module table in src/lib.rs and the directories under src/ disagree"
    );
}

#[test]
fn modules_import_only_what_the_table_allows_so_there_is_no_cycle() {
    let declared = declared_layers();
    let mut wrong = Vec::new();
    for file in library_files() {
        let module = top_module(&file);
        let text = std::fs::read_to_string(&file).expect("readable");
        let allowed = declared.get(&module).cloned().unwrap_or_default();
        for dep in crate_paths(&code_outside_tests(&text)) {
            if dep != module && !allowed.contains(&dep) {
                wrong.push(format!("{} imports crate::{dep}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the layer table does not allow:\n{}",
        wrong.join("\n")
    );
    // The table itself only points down: a module may depend on modules listed before it.
    let order: Vec<&String> = declared.keys().collect();
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let position = |m: &str| {
        lib.find(&format!("| [`{m}`]"))
            .or_else(|| lib.find(&format!("| `{m}`")))
    };
    for (module, deps) in &declared {
        for dep in deps {
            assert!(
                position(dep) < position(module),
                "{module} depends on {dep}, which the table lists after it"
            );
        }
    }
    assert!(order.len() >= 10);
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for file in library_files()
        .into_iter()
        .chain([src().join("lib.rs"), src().join("main.rs")])
    {
        let lines = std::fs::read_to_string(&file)
            .expect("readable")
            .lines()
            .count();
        if lines > MAX_LINES {
            long.push(format!("{} has {lines} lines", file.display()));
        }
    }
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let code = code_outside_tests(
        "use crate::a::X;\nuse crate::{b, c::D};\nlet t = tokio_rustls::crate::z; // crate::e\n#[cfg(test)]\nmod tests {\n    use crate::f;\n}\n",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c"]);
}
