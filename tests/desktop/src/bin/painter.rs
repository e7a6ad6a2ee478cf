//! zerocast-painter: draws the test desktop's known, changing content full-screen.
//! See `zerocast_testdesk::painter` and `zerocast_testdesk::layout`.
//!
//! Usage: `zerocast-painter [--fps N] [--full-motion] [--toplevel] [--ready-file PATH]`
//!   --fps N          content changes per second (default 60; 0 = draw once, then stay static)
//!   --full-motion    scroll a page so every pixel changes every frame (benchmarks; no counter)
//!   --toplevel       a fullscreen xdg-shell toplevel even where wlr-layer-shell exists (KWin)
//!   --ready-file P   created once the compositor has shown the first frame (also read from
//!                    $ZEROCAST_PAINTER_READY)

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use smithay_client_toolkit::reexports::client::Connection;
use zerocast_testdesk::painter::{run, PainterOptions};
use zerocast_testdesk::Content;

fn main() -> Result<()> {
    let mut opts = PainterOptions {
        ready_file: std::env::var_os("ZEROCAST_PAINTER_READY").map(Into::into),
        ..PainterOptions::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--fps" => opts.fps = it.next().context("--fps needs a value")?.parse()?,
            "--full-motion" => opts.content = Content::FullMotion,
            "--toplevel" => opts.toplevel = true,
            "--ready-file" => {
                opts.ready_file = Some(it.next().context("--ready-file needs a path")?.into())
            }
            "-h" | "--help" => {
                println!("usage: zerocast-painter [--fps N] [--full-motion] [--toplevel] [--ready-file PATH]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let conn = Connection::connect_to_env().context("connecting to the Wayland compositor")?;
    // No signal handling: the harness kills us by PID. The loop ends when the compositor
    // closes the surface or the connection.
    let stats = run(conn, &opts, Arc::new(AtomicBool::new(false)), |_| {})?;
    eprintln!(
        "zerocast-painter: exiting after {} frames ({} ticks skipped)",
        stats.frames_drawn, stats.ticks_skipped
    );
    Ok(())
}
