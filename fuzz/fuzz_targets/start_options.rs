#![no_main]
//! See harness.rs: `start_options`.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
#[allow(dead_code, reason = "each target uses one of the harness functions")]
mod harness;

/// One folder for the whole run: the parser creates the videos folder once and removes each
/// probe file it creates, so nothing piles up.
static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    harness::start_options(data, dir.path());
});
