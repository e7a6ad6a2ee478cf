//! `zerocast record`: one recording in this process, with a live progress line on a TTY.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use zerocast_portal::{CursorMode, SourceOptions, SourceType};
use zerocast_recorder::{
    encode, Codec, Container, EncoderChoice, EndReason, RateControl, RecordingOptions,
    RecordingState, Stats,
};

use crate::output;

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Output file (`%d` date, `%t` time). Default: $XDG_VIDEOS_DIR/zerocast-%d_%t.mkv
    #[arg(short, long)]
    output: Option<String>,
    /// Replace the output file if it exists.
    #[arg(long)]
    overwrite: bool,
    /// Container (default: from the extension, else mkv).
    #[arg(long)]
    container: Option<String>,
    /// Video codec: h264, hevc, av1, vp9 (default: hevc with NVENC, vp9 in webm, else h264).
    #[arg(long)]
    codec: Option<String>,
    /// Encoder: auto, nvenc, software.
    #[arg(long, default_value = "auto")]
    encoder: String,
    /// Maximum frames per second (default: every frame the compositor sends).
    #[arg(long)]
    fps: Option<u32>,
    /// Quality (CRF-like; lower is better).
    #[arg(long, conflicts_with = "bitrate")]
    quality: Option<u32>,
    /// Bitrate in kbit/s.
    #[arg(long)]
    bitrate: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Cursor: hidden, embedded (metadata is refused: it would leave the pointer out).
    #[arg(long, default_value = "embedded")]
    cursor: String,
    /// Source: monitor, window, virtual.
    #[arg(long, default_value = "monitor")]
    source: String,
    /// Don't use or store a restore token (always ask for the source).
    #[arg(long)]
    no_restore: bool,
    /// Write the final stats as JSON to this file (benchmarks).
    #[arg(long, hide = true)]
    stats_json: Option<PathBuf>,
}

/// Everything validated, ready to ask the portal.
struct Plan {
    opts: RecordingOptions,
    source: SourceOptions,
}

fn plan(args: RecordArgs) -> Result<Plan> {
    let path = match &args.output {
        Some(p) => PathBuf::from(output::expand_template(p)),
        None => {
            // The default folder may not exist yet on a fresh account; an explicit -o directory
            // must (a typo there should not silently create folders).
            let dir = output::videos_dir();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.join(output::expand_template("zerocast-%d_%t.mkv"))
        }
    };
    let encoder: EncoderChoice = args.encoder.parse()?;
    let container = match &args.container {
        Some(c) => c.parse::<Container>()?,
        None => Container::from_path(&path).unwrap_or(Container::Mkv),
    };
    let codec: Codec = match &args.codec {
        Some(c) => c.parse()?,
        None => encode::default_codec(container, encoder),
    };
    if !container.supports(codec) {
        let ok: Vec<&str> = Codec::ALL
            .iter()
            .filter(|c| container.supports(**c))
            .map(|c| c.as_str())
            .collect();
        return Err(anyhow!(
            "{container} cannot hold {codec}; use one of: {}",
            ok.join(", ")
        ));
    }
    if args.fps == Some(0) {
        return Err(anyhow!("--fps must be at least 1"));
    }
    let duration = match args.duration {
        Some(d) if !(d > 0.0 && d.is_finite()) => {
            return Err(anyhow!("--duration must be a positive number of seconds"))
        }
        Some(d) => Some(Duration::from_secs_f64(d)),
        None => None,
    };
    let cursor: CursorMode = args.cursor.parse().map_err(|e: String| anyhow!(e))?;
    if cursor == CursorMode::Metadata {
        return Err(anyhow!(
            "--cursor {}",
            zerocast_dbus::options::METADATA_CURSOR
        ));
    }
    let source: SourceType = args.source.parse().map_err(|e: String| anyhow!(e))?;

    // Everything that can fail without the portal fails here, before any dialog appears.
    output::check_writable(&path, args.overwrite)?;
    let encoder_name = encode::check_encoder(codec, encoder, container)?;
    tracing::info!(encoder = encoder_name, path = %path.display(), "plan");

    let mut opts = RecordingOptions::new(path);
    opts.container = container;
    opts.codec = codec;
    opts.encoder = encoder;
    opts.max_fps = args.fps;
    opts.duration = duration;
    if let Some(q) = args.quality {
        opts.rate = RateControl::Quality(q);
    }
    if let Some(b) = args.bitrate {
        opts.rate = RateControl::Bitrate(b);
    }
    Ok(Plan {
        opts,
        source: SourceOptions {
            source,
            cursor,
            restore: !args.no_restore,
        },
    })
}

pub async fn run(args: RecordArgs) -> Result<i32> {
    let stats_json = args.stats_json.clone();
    let Plan { opts, source } = plan(args)?;
    let path = opts.path.clone();
    // Catch signals before the portal is asked so an early Ctrl-C still tears down cleanly.
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;

    let start = zerocast_dbus::start_recording(zerocast_dbus::StartRequest {
        recording: opts,
        source,
        stop_on_disconnect: false,
        // In-process recordings report on the terminal; notifications are the daemon's.
        notify: false,
    });
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
    let what = match &summary.reason {
        EndReason::StreamLost(why) => format!("stream ended by the compositor ({why}); saved"),
        _ => "saved".to_string(),
    };
    eprintln!(
        "zerocast: {what} {} — {:.1} s, {} frames, {} dropped, {}",
        summary.path.display(),
        s.duration.as_secs_f64(),
        s.frames_written,
        s.frames_dropped,
        human_bytes(s.bytes)
    );
    println!("{}", summary.path.display());
    if let Some(p) = stats_json {
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
