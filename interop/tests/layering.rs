//! The module layering documented in `src/lib.rs` ("# Layering") holds: every module uses only
//! modules of earlier layers, so the module graph is a DAG that reads bottom-up, and every
//! module has a place in the list. The list in the docs is the one checked, so the two cannot
//! drift apart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// `module path → layer` from the numbered list under "# Layering" in lib.rs' docs.
fn documented_layers(lib_rs: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let mut in_section = false;
    let mut layer = 0;
    for line in lib_rs.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            if in_section {
                break;
            }
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with("# ") {
            in_section = doc == "# Layering";
            continue;
        }
        if !in_section {
            continue;
        }
        // "N. `a`, `b`: what they do" starts layer N; continuation lines name no modules.
        let Some((num, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(n) = num.parse::<usize>() else {
            continue;
        };
        layer = n;
        // `a`, `b`: … → the backticked names up to the first separator that is not ", ".
        let parts: Vec<&str> = rest.split('`').collect();
        for i in (1..parts.len()).step_by(2) {
            layers.insert(parts[i].to_string(), layer);
            if parts.get(i + 1) != Some(&", ") {
                break;
            }
        }
    }
    assert!(
        layer > 0,
        "no numbered list under \"# Layering\" in src/lib.rs"
    );
    layers
}

/// Every module file under `src/` (binaries excluded), as `(module path, file)`.
fn module_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "bin" {
                module_files(&path, &format!("{prefix}{name}::"), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            if name == "lib" || name == "mod" {
                continue; // declarations and re-exports only
            }
            out.push((format!("{prefix}{name}"), path));
        }
    }
}

/// The crate modules a file's non-test code names (`crate::x`, `crate::x::y`, `super::y`).
fn uses(src: &str, module: &str, known: &BTreeMap<String, usize>) -> Vec<String> {
    // Unit tests may use anything; they sit at the end of each file.
    let code = src.split("#[cfg(test)]").next().unwrap();
    let parent = module.rsplit_once("::").map(|(p, _)| p);
    let mut found = Vec::new();
    for line in code.lines() {
        // Doc links and comments are not dependencies.
        let line = line.split("//").next().unwrap();
        for (pat, base) in [("crate::", None), ("super::", parent)] {
            for (i, _) in line.match_indices(pat) {
                if pat == "super::" && base.is_none() {
                    continue;
                }
                let path: String = line[i + pat.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let path = match base {
                    Some(b) => format!("{b}::{path}"),
                    None => path,
                };
                // The longest known module that prefixes the path (`vk::context::X` →
                // `vk::context`; `format::Fourcc` → `format`).
                let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                let hit = (1..=segs.len())
                    .rev()
                    .map(|n| segs[..n].join("::"))
                    .find(|m| known.contains_key(m));
                if let Some(m) = hit {
                    if m != module && !found.contains(&m) {
                        found.push(m);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn modules_use_only_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = documented_layers(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    module_files(&src, "", &mut files);
    files.sort();
    let mut problems = Vec::new();
    for (module, path) in &files {
        let Some(&own) = layers.get(module) else {
            problems.push(format!(
                "{module} is not in the \"# Layering\" list of src/lib.rs"
            ));
            continue;
        };
        let text = fs::read_to_string(path).unwrap();
        for dep in uses(&text, module, &layers) {
            let theirs = layers[&dep];
            if theirs >= own {
                problems.push(format!(
                    "{module} (layer {own}) uses {dep} (layer {theirs}): only earlier layers"
                ));
            }
        }
    }
    assert!(
        files.len() >= 15,
        "found only {} modules: {files:?}",
        files.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself finds a back edge and an unlisted module (a test that cannot fail would
/// prove nothing).
#[test]
fn checker_sees_back_edges() {
    let lib = "//! # Layering\n//! 1. `format`: x\n//! 2. `vk::sync`, `cpu`: y\n//!    more\n\npub mod x;";
    let layers = documented_layers(lib);
    assert_eq!(layers["format"], 1);
    assert_eq!(layers["vk::sync"], 2);
    assert_eq!(layers["cpu"], 2);
    let src = "use crate::cpu::OutputMode;\nuse super::sync::X; // crate::format\n";
    assert_eq!(uses(src, "format", &layers), ["cpu"]);
    assert_eq!(uses(src, "vk::context", &layers), ["cpu", "vk::sync"]);
    let test_only = "fn a() {}\n#[cfg(test)]\nmod tests { use crate::cpu::X; }\n";
    assert!(uses(test_only, "format", &layers).is_empty());
}
