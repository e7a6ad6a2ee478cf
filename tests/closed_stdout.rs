//! Commands whose reader leaves early (`zerocast probe | head -1`, `… | grep -q`) end quietly
//! with success instead of panicking in `println!`. The pipe's read end is closed before the
//! command starts, so every write fails with EPIPE: no race with the reader.

use std::process::{Command, Stdio};

fn run_with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_zerocast"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        // No session bus, no Wayland: probe reports them unavailable, quickly.
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run zerocast");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_into_a_closed_pipe_exits_quietly() {
    for args in [&["probe"][..], &["probe", "--json"][..]] {
        let (status, stderr) = run_with_closed_stdout(args);
        assert!(
            status.success() && !stderr.contains("panicked"),
            "zerocast {args:?} with stdout closed: {status}, stderr:\n{stderr}"
        );
    }
}

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    let (status, stderr) = run_with_closed_stdout(&["--help"]);
    assert!(
        status.success() && !stderr.contains("panicked"),
        "zerocast --help with stdout closed: {status}, stderr:\n{stderr}"
    );
}
