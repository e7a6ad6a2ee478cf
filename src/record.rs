//! `zerocast record`: one recording in this process, with a live progress line on a TTY.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::cli::RecordArgs;
use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use zerocast_app::options::Surface;
use zerocast_recorder::{EndReason, RecordingState, Stats};

pub async fn run(mut args: RecordArgs) -> Result<i32> {
    // A path typed in a terminal is relative to the terminal's directory (as `ctl start` sends
    // it): made absolute here, at the shell's edge, so the request model keeps one rule for a
    // relative path (the videos folder) for every surface that has no working directory.
    args.request
        .output_from_cwd()
        .context("current directory")?;
    // Everything that can fail without the portal fails here, before any dialog appears,
    // with the rules D-Bus `Start` has, worded for the flags the user typed.
    let req = args
        .request
        .parse()
        .map_err(|e| anyhow::anyhow!(e.render(Surface::Cli)))?;
    let path = req.path.clone();
    tracing::info!(path = %path.display(), "request accepted");
    // Catch signals before the portal is asked so an early Ctrl-C still tears down cleanly.
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    let mut sigusr2 = signal(SignalKind::user_defined2()).context("installing SIGUSR2 handler")?;

    let start = zerocast_app::start_recording(&req);
    // Ctrl-C while the portal dialog is open (or the stream is starting) abandons the start:
    // our handlers replaced the default "terminate", so they must act here too.
    let (session, recording) = tokio::select! {
        r = start => r.with_context(|| format!("recording to {}", path.display()))?,
        _ = sigint.recv() => anyhow::bail!("interrupted before recording started"),
        _ = sigterm.recv() => anyhow::bail!("terminated before recording started"),
    };

    let tty = std::io::stderr().is_terminal();
    let mut stats = recording.stats();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut last_frames = (0u64, std::time::Instant::now());
    let mut fps = 0.0;
    let result = loop {
        tokio::select! {
            _ = sigint.recv() => break recording.stop().await,
            _ = sigterm.recv() => break recording.stop().await,
            // SIGUSR1 toggles pause (for hotkeys: `pkill -USR1 -x zerocast`); the paused time
            // is left out of the file.
            _ = sigusr1.recv() => {
                let r = if recording.state() == RecordingState::Paused {
                    recording.resume()
                } else {
                    recording.pause()
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "pause/resume ignored");
                }
            }
            // SIGUSR2 saves a replay (`pkill -USR2 -x zerocast`): all the ring holds, to
            // zerocast-replay-%d-%t in the videos folder; the replay goes on. Frames keep
            // flowing on their own threads while this waits for the file.
            _ = sigusr2.recv() => save_replay(&recording, req.container).await,
            r = recording.finished() => break r,
            _ = ticker.tick(), if tty => {
                let s = stats.borrow_and_update().clone();
                let now = std::time::Instant::now();
                let dt = now.duration_since(last_frames.1).as_secs_f64();
                if dt > 0.0 {
                    fps = (s.frames_written.saturating_sub(last_frames.0)) as f64 / dt;
                }
                last_frames = (s.frames_written, now);
                progress_line(&s, fps);
            }
        }
    };
    if tty {
        eprint!("\r\x1b[2K");
    }
    session.close().await;
    let summary = result.with_context(|| format!("recording to {}", path.display()))?;
    let s = &summary.stats;
    let Some(file) = &summary.path else {
        eprintln!(
            "zerocast: replay stopped after {:.1} s; nothing written (--save-on-stop keeps it)",
            s.duration.as_secs_f64()
        );
        return Ok(0);
    };
    let what = match &summary.reason {
        EndReason::StreamLost(why) => format!("stream ended by the compositor ({why}); saved"),
        _ => "saved".to_string(),
    };
    eprintln!(
        "zerocast: {what} {} — {:.1} s, {} frames, {} dropped, {}",
        file.display(),
        s.duration.as_secs_f64(),
        s.frames_written,
        s.frames_dropped,
        human_bytes(s.bytes)
    );
    // The file is written whatever happens to stdout; a reader that left must not stop the
    // stats file below.
    let _ = zerocast_app::say!("{}", file.display());
    if let Some(p) = args.stats_json {
        let j = serde_json::json!({
            "frames_received": s.frames_received,
            "frames_written": s.frames_written,
            "frames_dropped": s.frames_dropped,
            "bytes": s.bytes,
            "duration_s": s.duration.as_secs_f64(),
            "encoder": s.encoder,
            "capture_path": s.capture_path.as_str(),
        });
        std::fs::write(&p, j.to_string()).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(match summary.reason {
        EndReason::StreamLost(_) => 3,
        _ => 0,
    })
}

fn progress_line(s: &Stats, fps: f64) {
    let secs = s.duration.as_secs_f64();
    let state = if s.state == RecordingState::Paused {
        "paused"
    } else {
        "●"
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K{state} {:02}:{:04.1}  {:5.1} fps  dropped {}  {}  {} {}",
        (secs / 60.0) as u64,
        secs % 60.0,
        fps,
        s.frames_dropped,
        human_bytes(s.bytes),
        s.capture_path,
        s.encoder
    );
    let _ = err.flush();
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} kB", b as f64 / 1024.0)
    }
}

/// Saves everything a replay holds to the default replay name; reports on the terminal.
async fn save_replay(
    recording: &zerocast_recorder::Recording,
    container: zerocast_recorder::Container,
) {
    let req = tokio::task::spawn_blocking(move || {
        zerocast_app::dbus::parse_save_replay(
            &Default::default(),
            container,
            &zerocast_app::PathContext::from_env(),
        )
    })
    .await;
    let req = match req {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return eprintln!("zerocast: replay not saved: {e}"),
        Err(e) => return eprintln!("zerocast: replay not saved: {e}"),
    };
    match recording.save_replay(req.path, req.seconds).await {
        Ok(s) => {
            eprintln!(
                "zerocast: replay saved, {:.1} s, {}",
                s.seconds,
                human_bytes(s.bytes)
            );
            let _ = zerocast_app::say!("{}", s.path.display());
        }
        Err(e) => eprintln!("zerocast: replay not saved: {e}"),
    }
}
