//! SECURITY.md 1, "Signatures are compared in constant time": a source check (timing tests are
//! flaky) over the files that verify signatures, and a test that the checker catches naive
//! comparisons.

use super::*;

/// The files that verify signatures, read at compile time so a change to them rebuilds this.
const SIGNATURE_SOURCES: [(&str, &str); 4] = [
    (
        "src/protocol/signature.rs",
        include_str!("../../../src/protocol/signature.rs"),
    ),
    (
        "src/http/auth.rs",
        include_str!("../../../src/http/auth.rs"),
    ),
    (
        "src/ws/subscribe.rs",
        include_str!("../../../src/ws/subscribe.rs"),
    ),
    (
        "src/ws/signin.rs",
        include_str!("../../../src/ws/signin.rs"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(String),
    /// A string, char or number literal; its content is never an identifier.
    Lit,
}

/// A small Rust tokenizer: identifiers, literals (strings, raw strings, chars, numbers) and
/// punctuation; comments and whitespace are dropped.
fn tokenize(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i += 2;
        } else if (c == 'r' || c == 'b') && (at(i + 1) == '"' || (at(i + 1) == '#' && c == 'r'))
            || (c == 'b' && at(i + 1) == 'r' && (at(i + 2) == '"' || at(i + 2) == '#'))
        {
            // r"…", r#"…"#, b"…", br#"…"#
            let mut j = i + 1;
            if at(j) == 'r' {
                j += 1;
            }
            let raw = chars[i] == 'r' || at(i + 1) == 'r';
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1; // the opening quote
            loop {
                if j >= chars.len() {
                    break;
                }
                if !raw && chars[j] == '\\' {
                    j += 2;
                    continue;
                }
                if chars[j] == '"' && (0..hashes).all(|h| at(j + 1 + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push(Tok::Lit);
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            out.push(Tok::Lit);
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.push(Tok::Lit);
                i = j + 1;
            } else if at(i + 2) == '\'' {
                out.push(Tok::Lit);
                i += 3;
            } else {
                out.push(Tok::Punct("'".into()));
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Tok::Ident(chars[i..j].iter().collect()));
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Tok::Lit);
            i = j;
        } else {
            let two: String = [c, at(i + 1)].iter().collect();
            if ["==", "!=", "&&", "||", "::", "->", "=>", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Punct(two));
                i += 2;
            } else {
                out.push(Tok::Punct(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// The production part of a source file: everything before its `#[cfg(test)]` module.
fn production_code(src: &str) -> &str {
    src.find("#[cfg(test)]").map_or(src, |at| &src[..at])
}

fn is_punct(t: &Tok, p: &str) -> bool {
    matches!(t, Tok::Punct(x) if x == p)
}

fn is_ident(t: &Tok, name: &str) -> bool {
    matches!(t, Tok::Ident(x) if x == name)
}

/// Where an operand stops when walking away from a comparison at bracket depth 0.
fn ends_operand(t: &Tok) -> bool {
    match t {
        Tok::Punct(p) => {
            [",", ";", "{", "}", "=", "&&", "||", "=>", "|", "!=", "=="].contains(&p.as_str())
        }
        Tok::Ident(w) => [
            "if", "while", "return", "let", "match", "else", "in", "assert",
        ]
        .contains(&w.as_str()),
        Tok::Lit => false,
    }
}

/// The tokens of the operand that ends just before `end` (exclusive), bracket-aware.
fn operand_before(toks: &[Tok], end: usize) -> &[Tok] {
    let mut depth = 0i32;
    let mut i = end;
    while i > 0 {
        let t = &toks[i - 1];
        if is_punct(t, ")") || is_punct(t, "]") {
            depth += 1;
        } else if is_punct(t, "(") || is_punct(t, "[") {
            if depth == 0 {
                break;
            }
            depth -= 1;
        } else if depth == 0 && (ends_operand(t) || is_punct(t, "!")) {
            break;
        }
        i -= 1;
    }
    &toks[i..end]
}

/// The tokens of the operand that starts at `start`, bracket-aware.
fn operand_after(toks: &[Tok], start: usize) -> &[Tok] {
    let mut depth = 0i32;
    let mut i = start;
    while i < toks.len() {
        let t = &toks[i];
        if is_punct(t, "(") || is_punct(t, "[") {
            depth += 1;
        } else if is_punct(t, ")") || is_punct(t, "]") {
            if depth == 0 {
                break;
            }
            depth -= 1;
        } else if depth == 0 && ends_operand(t) {
            break;
        }
        i += 1;
    }
    &toks[start..i]
}

/// Whether an identifier names (or produces) a signature, a MAC or a digest.
fn signature_like(ident: &str) -> bool {
    let w = ident.to_ascii_lowercase();
    [
        "sig",
        "mac",
        "digest",
        "expected",
        "computed",
        "finalize",
        "into_bytes",
    ]
    .iter()
    .any(|s| w.contains(s))
        || ["sign", "hex", "tag", "hash", "encode"].contains(&w.as_str())
}

/// Every non-constant-time comparison (`==`, `!=`, `.eq()`, `.ne()`, `.eq_ignore_ascii_case()`,
/// `.cmp()`, `.starts_with()`) whose operands mention a signature, MAC or digest; as text.
fn signature_comparisons(src: &str) -> Vec<String> {
    let toks = tokenize(src);
    let text = |ts: &[Tok]| {
        ts.iter()
            .map(|t| match t {
                Tok::Ident(s) | Tok::Punct(s) => s.clone(),
                Tok::Lit => "<lit>".into(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let suspicious = |ts: &[Tok]| {
        ts.iter()
            .any(|t| matches!(t, Tok::Ident(w) if signature_like(w)))
    };
    let mut found = Vec::new();
    for i in 0..toks.len() {
        let (left, right) = if is_punct(&toks[i], "==") || is_punct(&toks[i], "!=") {
            (operand_before(&toks, i), operand_after(&toks, i + 1))
        } else if i > 0
            && is_punct(&toks[i - 1], ".")
            && toks.get(i + 1).is_some_and(|t| is_punct(t, "("))
            && [
                "eq",
                "ne",
                "eq_ignore_ascii_case",
                "cmp",
                "starts_with",
                "ends_with",
            ]
            .iter()
            .any(|m| is_ident(&toks[i], m))
        {
            (operand_before(&toks, i - 1), operand_after(&toks, i + 2))
        } else {
            continue;
        };
        if suspicious(left) || suspicious(right) {
            found.push(format!(
                "{}  <{}>  {}",
                text(left),
                text(&toks[i..=i]),
                text(right)
            ));
        }
    }
    found
}

/// The bodies of the functions defined in `src`, by name.
fn function_bodies(src: &str) -> Vec<(String, Vec<Tok>)> {
    let toks = tokenize(src);
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < toks.len() {
        if let (true, Tok::Ident(name)) = (is_ident(&toks[i], "fn"), &toks[i + 1]) {
            let Some(open) = (i + 2..toks.len()).find(|&j| is_punct(&toks[j], "{")) else {
                break;
            };
            let mut depth = 0;
            let mut close = open;
            for (j, t) in toks.iter().enumerate().skip(open) {
                if is_punct(t, "{") {
                    depth += 1;
                } else if is_punct(t, "}") {
                    depth -= 1;
                    if depth == 0 {
                        close = j;
                        break;
                    }
                }
            }
            out.push((name.clone(), toks[open..=close].to_vec()));
            i = open + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Whether the tokens call `.name(` (a method) or `name(` / `path::name(` (a function).
fn calls(body: &[Tok], name: &str) -> bool {
    body.windows(2)
        .any(|w| is_ident(&w[0], name) && is_punct(&w[1], "("))
}

/// The constant-time primitives accepted: the HMAC crate's `verify_slice`/`verify` (and their
/// truncated variants) and `subtle`'s `ct_eq`.
const CT_PRIMITIVES: [&str; 5] = [
    "verify_slice",
    "verify",
    "verify_truncated_left",
    "verify_truncated_right",
    "ct_eq",
];

/// Names of the functions in signature.rs that compare in constant time: those calling a
/// primitive directly (on a value, `.verify_slice(`), and, to a fixed point, those calling one
/// of them.
fn constant_time_functions(signature_rs: &str) -> BTreeSet<String> {
    let bodies = function_bodies(production_code(signature_rs));
    let mut ct: BTreeSet<String> = bodies
        .iter()
        .filter(|(_, body)| {
            body.windows(3).any(|w| {
                is_punct(&w[0], ".")
                    && CT_PRIMITIVES.iter().any(|p| is_ident(&w[1], p))
                    && is_punct(&w[2], "(")
            })
        })
        .map(|(name, _)| name.clone())
        .collect();
    loop {
        let more: Vec<String> = bodies
            .iter()
            .filter(|(name, body)| !ct.contains(name) && ct.iter().any(|c| calls(body, c)))
            .map(|(name, _)| name.clone())
            .collect();
        if more.is_empty() {
            return ct;
        }
        ct.extend(more);
    }
}

/// The checker itself must catch the usual naive comparisons and accept what is fine (a key
/// comparison next to a signature, a constant-time verify); otherwise the next test proves
/// nothing.
#[test]
fn constant_time_checker_catches_naive_signature_comparisons() {
    for naive in [
        "fn v(s: &str, m: &str, given: &str) -> bool { sign(s, m) == given }",
        "fn v() -> bool { let expected = hex::encode(mac.finalize().into_bytes()); if expected != given { return false; } true }",
        "fn v() -> bool { computed.as_bytes().eq(sig.as_bytes()) }",
        "fn v() -> bool { provided.eq_ignore_ascii_case(&hmac_hex) }",
        "fn v() -> bool { auth == format!(\"{}:{}\", key, sign(secret, msg)) }",
        "fn v() -> bool { if signature_hex != &*calculated { false } else { true } }",
        "fn v() -> bool { m.finalize().into_bytes().as_slice() == &bytes[..] }",
    ] {
        assert!(
            !signature_comparisons(naive).is_empty(),
            "the checker must flag: {naive}"
        );
    }
    for fine in [
        "fn f(key: &str, auth: &str) -> Option<&str> { let (k, sig) = auth.split_once(':')?; (k == key).then_some(sig) }",
        "fn f() -> bool { mac(secret, message).verify_slice(&sig).is_ok() }",
        "fn f() { let v: Vec<_> = q.iter().filter(|(k, _)| k != \"auth_signature\").collect(); }",
        "fn f() { if key != app.key { return; } let s = \"sig == expected\"; }",
        "fn f() { if !given.eq_ignore_ascii_case(&actual) { return; } }",
    ] {
        assert_eq!(
            signature_comparisons(fine),
            Vec::<String>::new(),
            "the checker must accept: {fine}"
        );
    }
    let ct = constant_time_functions(
        "fn mac() {} fn verify_hex() -> bool { mac().verify_slice(&s).is_ok() } \
         fn verify_user() -> bool { verify_hex() } fn naive() -> bool { a == b }",
    );
    assert_eq!(
        ct.into_iter().collect::<Vec<_>>(),
        ["verify_hex", "verify_user"]
    );
}

/// Signatures are compared in constant time: every signature check in the server goes through
/// a function of `src/protocol/signature.rs` that uses HMAC's `verify_slice` (or `subtle`'s
/// `ct_eq`), and no file that handles signatures compares one with `==`, `!=` or `.eq()`.
#[test]
fn signature_checks_use_a_constant_time_comparison() {
    let signature_rs = SIGNATURE_SOURCES[0].1;
    assert!(
        production_code(signature_rs).contains("use hmac::"),
        "src/protocol/signature.rs must use the hmac crate, whose verify_slice is constant-time"
    );
    let ct = constant_time_functions(signature_rs);
    assert!(
        !ct.is_empty(),
        "src/protocol/signature.rs has no function using verify_slice/verify/ct_eq"
    );
    // Every public verifier in signature.rs is constant-time.
    for (name, _) in function_bodies(production_code(signature_rs)) {
        if name.starts_with("verify") {
            assert!(
                ct.contains(&name),
                "signature::{name} does not reach a constant-time comparison (constant-time: {ct:?})"
            );
        }
    }
    // The HTTP API, channel authorization and sign-in verify through those functions, and any
    // `signature::verify…` they call is one of them.
    for (file, src) in &SIGNATURE_SOURCES[1..] {
        let toks = tokenize(production_code(src));
        let mut used = Vec::new();
        for w in toks.windows(4) {
            if is_ident(&w[0], "signature") && is_punct(&w[1], "::") && is_punct(&w[3], "(") {
                if let Tok::Ident(f) = &w[2] {
                    if f.starts_with("verify") {
                        assert!(
                            ct.contains(f),
                            "{file} calls signature::{f}, which is not constant-time ({ct:?})"
                        );
                        used.push(f.clone());
                    }
                }
            }
        }
        assert!(
            !used.is_empty(),
            "{file} does not verify through src/protocol/signature.rs"
        );
    }
    // No naive comparison of a signature anywhere in those files.
    for (file, src) in SIGNATURE_SOURCES {
        let found = signature_comparisons(production_code(src));
        assert!(
            found.is_empty(),
            "{file} compares a signature without constant time:\n{}",
            found.join("\n")
        );
    }
    // Nothing in the crate defines its own (possibly non-constant-time) primitive of the same
    // name, and no other source file compares signatures naively.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("read source");
            let code = production_code(&src);
            for (name, _) in function_bodies(code) {
                assert!(
                    !CT_PRIMITIVES.contains(&name.as_str()) || name == "verify",
                    "{} defines its own {name}",
                    path.display()
                );
            }
            let found = signature_comparisons(code);
            assert!(
                found.is_empty(),
                "{} compares a signature without constant time:\n{}",
                path.display(),
                found.join("\n")
            );
        }
    }
}
