//! No import cycle between the top-level modules of any crate in the workspace: the layout shows
//! the data flow (capture → sink → encoder; request → path), so a module that reaches back up
//! it is a design error, not a style nit. Edges are `crate::module` references in the source
//! (`use` or inline paths, braced groups too), comments stripped; references to items the
//! crate root re-exports do not count (the root is everyone's). `cargo test --test
//! module_cycles` prints each crate's edges when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's `src/` in the workspace.
const CRATES: &[&str] = &[
    "src",
    "app/src",
    "client/src",
    "dbus/src",
    "interop/src",
    "portal-client/src",
    "recorder/src",
    "strenum/src",
    "tray/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`None`: the crate root or a binary).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers right after `crate::`, and the first identifier of each item of a
/// `crate::{a::X, b, c::{..}}` group.
fn crate_refs(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group only (depth 0).
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.push(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut g = Graph::new();
    for f in &files {
        let Some(from) = top_module(src, f) else {
            continue;
        };
        let code = strip_comments(&std::fs::read_to_string(f).unwrap());
        let edges = g.entry(from.clone()).or_default();
        for to in crate_refs(&code) {
            if to != from && tops.contains(&to) {
                edges.insert(to);
            }
        }
    }
    g
}

/// One cycle of `g`, if it has any (depth-first search, grey/black marking).
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_cycle_between_its_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    for c in CRATES {
        let g = graph(&root.join(c));
        assert!(!g.is_empty() || *c == "strenum/src", "{c}: no modules read");
        if let Some(cycle) = find_cycle(&g) {
            failures.push(format!("{c}: {}\n  edges: {g:?}", cycle.join(" → ")));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles:\n{}",
        failures.join("\n")
    );
}

/// The checker itself: a cycle through a braced group is found, a comment is not an edge.
#[test]
fn the_checker_sees_groups_and_ignores_comments() {
    let refs = crate_refs(&strip_comments(
        "use crate::{pw::X, sink, audio::{a, b}};\nlet x = crate::encode::f(); // crate::stats",
    ));
    assert_eq!(refs, ["pw", "sink", "audio", "encode"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}
