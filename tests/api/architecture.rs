//! The source's shape: no module in `src/` imports a module that imports it
//! (a parent and its own children aside). A shared piece belongs below both.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the crate, by path (`store::passkeys`), with its source.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let mut parts: Vec<String> = relative
                    .with_extension("")
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                let source = std::fs::read_to_string(&path).expect("source");
                // Unit tests may reach anywhere.
                let source = match source.find("#[cfg(test)]\nmod tests") {
                    Some(at) => source[..at].to_string(),
                    None => source,
                };
                out.insert(parts.join("::"), source);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(modules: &BTreeMap<String, String>, from: &str, path: &[&str]) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    let mut rest = path;
    match rest.first() {
        Some(&"crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some(&"super") => {
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(&"self") => rest = &rest[1..],
        _ => return None,
    }
    (0..=rest.len()).rev().find_map(|n| {
        let mut candidate = base.clone();
        candidate.extend_from_slice(&rest[..n]);
        let candidate = candidate.join("::");
        modules.contains_key(&candidate).then_some(candidate)
    })
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a source names from `crate`, `super` or `self`, with the
/// items of a `{…}` group each as a path of its own.
fn paths(source: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| source_at(&chars, i, p))
            .filter(|_| i == 0 || !is_ident(chars[i - 1]));
        let Some(_) = starts else {
            i += 1;
            continue;
        };
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect::<String>());
            if source_at(&chars, j, "::") {
                j += 2;
                if j < chars.len() && chars[j] == '{' {
                    let close = (j..chars.len()).find(|&k| chars[k] == '}').unwrap_or(j);
                    let group: String = chars[j + 1..close].iter().collect();
                    for item in group.split(',') {
                        let item = item.trim().split(" as ").next().unwrap_or("").trim();
                        let mut path = segments.clone();
                        path.extend(item.split("::").map(str::to_string));
                        found.push(path);
                    }
                    j = close;
                    break;
                }
            } else {
                break;
            }
        }
        found.push(segments);
        i = j.max(i + 1);
    }
    found
}

fn source_at(chars: &[char], at: usize, text: &str) -> bool {
    text.chars()
        .enumerate()
        .all(|(k, c)| chars.get(at + k) == Some(&c))
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.starts_with(&format!("{b}::"))
        || b.starts_with(&format!("{a}::"))
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let modules = modules();
    let mut edges = BTreeSet::new();
    for (module, source) in &modules {
        for path in paths(source) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            if let Some(target) = resolve(&modules, module, &path) {
                if &target != module {
                    edges.insert((module.clone(), target));
                }
            }
        }
    }
    assert!(
        edges.contains(&("routes::login".into(), "passkey_login".into())),
        "the scan sees imports: {edges:?}"
    );
    let circles: Vec<_> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())) && !related(a, b))
        .collect();
    assert!(
        circles.is_empty(),
        "modules that import each other: {circles:?}"
    );
}
