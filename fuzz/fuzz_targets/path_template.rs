#![no_main]
//! See harness.rs: `path_template`.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
#[allow(dead_code, reason = "each target uses one of the harness functions")]
mod harness;

fuzz_target!(|data: &[u8]| harness::path_template(data));
