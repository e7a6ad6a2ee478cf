#![no_main]
//! See harness.rs: `token_file`.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
#[allow(dead_code, reason = "each target uses one of the harness functions")]
mod harness;

/// In memory where there is /dev/shm: `store` syncs each file it writes, which on a disk costs
/// milliseconds an input.
static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir")
    });
    harness::token_file(data, &dir.path().join("zerocast"));
});
