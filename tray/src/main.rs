//! `zerocast-tray` (`zerocast tray`): a StatusNotifierItem for the zerocast daemon. A client of
//! `org.zerocast.Recorder1` only: it links no recorder code and starts the daemon by D-Bus
//! activation on the first Record click.

mod bus;
mod help;
mod model;
mod shortcuts;
mod sni;

use std::path::PathBuf;

use anyhow::Context;
use tracing::info;

use help::HELP;

fn main() {
    let mut verbose = 0;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "-h" | "--help" => {
                // Not println!: `zerocast-tray --help | grep -q …` closes the pipe early, and
                // println! panics on that.
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{HELP}");
                return;
            }
            "-v" | "--verbose" => verbose += 1,
            "-vv" => verbose += 2,
            other => {
                eprintln!("zerocast tray: unknown argument {other:?}\n\n{HELP}");
                std::process::exit(2);
            }
        }
    }
    init_logging(verbose);
    // One thread: the tray does little, and every extra worker is memory and wake-ups.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zerocast tray: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("zerocast tray: {}", one_line(e.chain()));
        std::process::exit(1);
    }
}

/// An error chain on one line, each cause once: zbus's "Failed to connect to address …: No
/// such file or directory (os error 2)" already ends with its source, which `{:#}` would print
/// again. The same rule as `zerocast_app::report::one_line`, which the tray does not link (it
/// would bring the recorder's libraries).
fn one_line<'a>(chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut shown: Vec<String> = Vec::new();
    for e in chain {
        let msg = e.to_string();
        if !msg.is_empty() && !shown.last().is_some_and(|last| last.contains(&msg)) {
            shown.push(msg);
        }
    }
    shown.join(": ")
}

async fn run() -> anyhow::Result<()> {
    let conn = zbus::Connection::session()
        .await
        .context("cannot connect to the session bus")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    info!("tray running");
    // Beside the loop: binding may wait minutes for GNOME's dialog; presses come back as the
    // menu's actions.
    tokio::spawn(shortcuts::run(conn.clone(), tx.clone()));
    bus::Loop::new(conn, tx, own_icons_installed())
        .run(rx)
        .await
}

/// Whether our state icons are in an icon theme dir the host will search.
fn own_icons_installed() -> bool {
    let mut dirs: Vec<PathBuf> = Vec::new();
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) => dirs.push(d.into()),
        None => {
            if let Some(h) = std::env::var_os("HOME") {
                dirs.push(PathBuf::from(h).join(".local/share"));
            }
        }
    }
    let data_dirs = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    dirs.extend(data_dirs.split(':').map(PathBuf::from));
    dirs.iter().any(|d| {
        d.join("icons/hicolor/scalable/status/zerocast-recording.svg")
            .is_file()
    })
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info,zbus=warn",
        1 => "debug,zbus=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("ZEROCAST_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let zbus_like = anyhow::Error::from(io)
            .context("Failed to connect to address `unix:path=/x`: entity not found");
        let e = zbus_like.context("cannot connect to the session bus");
        assert_eq!(
            super::one_line(e.chain()),
            "cannot connect to the session bus: Failed to connect to address `unix:path=/x`: \
             entity not found"
        );
    }
}
