//! `zerocast-tray --help | grep -q …` closes the pipe after the first match: the tray ends
//! quietly with success instead of panicking in `println!` (which failed the package test once).

use std::process::{Command, Stdio};

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    // The read end is closed before the tray starts, so its write fails with EPIPE every time.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_zerocast-tray"))
        .arg("--help")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run zerocast-tray");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "zerocast-tray --help with stdout closed: {}, stderr:\n{stderr}",
        out.status
    );
}
