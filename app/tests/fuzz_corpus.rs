//! Replays the checked-in fuzz corpus (fuzz/corpus/<target>/) through the fuzz harness on the
//! stable toolchain: the inputs `cargo fuzz` found interesting keep being checked, with the
//! same invariants, by the normal `cargo test` (scripts/fuzz.sh grows and minimizes them).

use std::path::Path;

#[path = "../../fuzz/harness.rs"]
mod harness;

fn replay(target: &str, run: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // An emptied corpus would make this test pass without checking anything.
    assert!(files.len() >= 5, "{}: {} files", dir.display(), files.len());
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // Shown (captured output) only when the test fails: which input broke an invariant.
        eprintln!("replaying {}", f.display());
        run(&data);
    }
}

#[test]
fn start_options_corpus() {
    let dir = tempfile::tempdir().unwrap();
    replay("start_options", |d| harness::start_options(d, dir.path()));
}

#[test]
fn replay_options_corpus() {
    let dir = tempfile::tempdir().unwrap();
    replay("replay_options", |d| harness::replay_options(d, dir.path()));
}

#[test]
fn path_template_corpus() {
    replay("path_template", harness::path_template);
}

#[test]
fn token_file_corpus() {
    let dir = tempfile::tempdir().unwrap();
    replay("token_file", |d| harness::token_file(d, dir.path()));
}
