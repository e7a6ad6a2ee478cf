#![no_main]
//! See harness.rs: `token_file`.

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
#[allow(dead_code, reason = "each target uses one of the harness functions")]
mod harness;

/// One folder for the whole run: `$ZEROCAST_FUZZ_DIR` (scripts/fuzz.sh makes one in /dev/shm:
/// `store` syncs each file, which on a disk costs milliseconds, and removes it afterwards), else
/// a new temp folder (left behind: libFuzzer exits without running destructors).
static DIR: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| match std::env::var_os("ZEROCAST_FUZZ_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).expect("ZEROCAST_FUZZ_DIR");
            d
        }
        None => tempfile::tempdir().expect("temp dir").keep(),
    });
    harness::token_file(data, &dir.join("zerocast"));
});
