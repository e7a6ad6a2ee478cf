//! zerocast: Wayland screen recorder (CLI, daemon, control client, probe).

mod cli;
mod record;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command};
use zerocast_app::caps;

fn main() {
    // SVT-AV1 logs info lines straight to stderr unless told otherwise; set before any thread
    // exists (the environment is not thread-safe to modify later).
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", "1");
    }
    let cli = Cli::parse();
    if let Command::Tray { args } = &cli.command {
        exec_tray(args, cli.verbose);
    }
    if matches!(cli.command, Command::Daemon) {
        // The daemon logs to the journal when systemd started it, else to stderr.
        zerocast_app::logging::init(if cli.verbose > 0 { "debug" } else { "info" });
    } else {
        zerocast_app::logging::init_cli(cli.verbose);
    }
    // `record` is one recording: its own threads (PipeWire, encoder, audio) do the work and the
    // runtime only waits on the portal, signals and the recording's events, so one thread is
    // enough; the daemon serves D-Bus and several recordings at once on worker threads.
    let runtime = match &cli.command {
        Command::Record(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zerocast: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result: Result<i32> = runtime.block_on(async move {
        match cli.command {
            Command::Record(args) => record::run(*args).await,
            Command::Probe { json } => probe(json).await,
            Command::Daemon => zerocast_dbus::run_daemon().await.map(|()| 0),
            Command::Ctl { cmd } => zerocast_dbus::run_ctl(cmd).await,
            Command::Tray { .. } => unreachable!("exec'd above"),
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        // `zerocast probe | head -1`: what the reader wanted, it got.
        Err(e) if zerocast_app::report::stdout_closed(&e) => std::process::exit(0),
        Err(e) => {
            // One line, the whole cause chain, each cause once: scripts and users both read
            // this.
            eprintln!("zerocast: {}", zerocast_app::report::one_line(e.chain()));
            std::process::exit(1);
        }
    }
}

/// Replaces this process with `zerocast-tray` (next to this binary, else from `PATH`): the
/// applet stays in the session all day and must not carry the recorder's libraries.
fn exec_tray(args: &[String], verbose: u8) -> ! {
    use std::os::unix::process::CommandExt;
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("zerocast-tray")))
        .filter(|p| p.is_file());
    let program = sibling.unwrap_or_else(|| "zerocast-tray".into());
    let mut cmd = std::process::Command::new(&program);
    for _ in 0..verbose {
        cmd.arg("-v");
    }
    let err = cmd.args(args).exec();
    eprintln!("zerocast: cannot run {}: {err}", program.display());
    std::process::exit(1);
}

async fn probe(json: bool) -> Result<i32> {
    // The portal, audio, encoders and GPU path, read as the daemon's `Capabilities` reads them.
    let caps::Capabilities {
        encoders,
        audio_codecs,
        audio_sources: audio,
        portal,
        gpu,
    } = caps::Capabilities::read().await;
    let gpu = gpu.ok_or_else(|| anyhow::anyhow!("the GPU probe panicked"))?;
    let backends = zerocast_portal::setup::running_backends()
        .await
        .unwrap_or_default();
    let tokens = zerocast_portal::setup::stored_tokens();
    let programs = zerocast_portal::setup::portal_programs()
        .await
        .unwrap_or_default();
    // A connect and /proc reads, and a package-manager query: off the async workers.
    let desktop = tokio::task::spawn_blocking(zerocast_portal::setup::desktop).await?;
    // Which global shortcuts are in effect: the running tray's account, else what the portal
    // and the GNOME extension offer. D-Bus only, no GPU code.
    let shortcuts = zerocast_portal::shortcuts::shortcuts().await;
    // The same tables D-Bus `Capabilities` and `ctl` read (`zerocast-app`'s `caps`).
    // Opening an NVENC session loads the driver: off the async workers, once per codec.
    let nvenc = tokio::task::spawn_blocking(caps::nvenc).await?;
    let containers: Vec<(String, Vec<&str>)> = caps::containers()
        .into_iter()
        .map(|(c, codecs)| (c.to_string(), codecs.iter().map(|c| c.as_str()).collect()))
        .collect();
    let ranges = caps::ranges();
    if json {
        let audio_json = match &audio {
            Ok(sources) => serde_json::json!({
                "available": true,
                "codecs": audio_codecs,
                "sources": sources.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({"available": false, "reason": e.to_string()}),
        };
        let portal_json = match &portal {
            Ok(c) => serde_json::json!({
                "available": true,
                "version": c.version,
                "cursor_modes": c.cursor_modes.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "source_types": c.source_types.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "backends": backends,
                "restore_tokens": tokens.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({"available": false, "reason": e.to_string()}),
        };
        let program_json = |p: &zerocast_portal::setup::Program| serde_json::json!({"name": p.name, "path": p.path, "package": p.package});
        let desktop_json = serde_json::json!({
            "current_desktop": desktop.current_desktop,
            "compositor": desktop.compositor.as_ref().map(program_json),
        });
        let programs_json: serde_json::Map<String, serde_json::Value> = programs
            .iter()
            .map(|(label, p)| (label.clone(), program_json(p)))
            .collect();
        let shortcuts_json = serde_json::json!({
            "mechanism": shortcuts.mechanism,
            "reason": shortcuts.reason,
            "portal_version": shortcuts.portal_version,
            "bound": shortcuts.bound,
            "tray_running": shortcuts.tray,
        });
        let enc: serde_json::Map<String, serde_json::Value> = encoders
            .iter()
            .map(|(c, e)| (c.to_string(), serde_json::json!(e)))
            .collect();
        zerocast_app::say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "desktop": desktop_json,
                "portal": portal_json,
                "portal_programs": programs_json,
                "shortcuts": shortcuts_json,
                "audio": audio_json,
                "encoders": enc,
                "codecs": caps::codecs().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "containers": containers.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                "encoder_choices": caps::encoder_choices().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "ranges": ranges.iter().map(|(k, r)| (k.to_string(), serde_json::json!({"min": r.min, "max": r.max, "min_exclusive": r.min_exclusive}))).collect::<serde_json::Map<_, _>>(),
                "nvenc": nvenc.iter().map(|(c, r)| (c.to_string(), match r {
                    Ok(name) => serde_json::json!({"available": true, "encoder": name}),
                    Err(why) => serde_json::json!({"available": false, "reason": why}),
                })).collect::<serde_json::Map<_, _>>(),
                "zero_copy": gpu.zero_copy,
                "zero_copy_why_not": gpu.zero_copy_why_not,
                "gpu_convert_cpu_encode": gpu.gpu_convert_cpu_encode,
                "explicit_sync": gpu.chosen.is_some() && gpu.semaphore_export,
                "gpu_report": gpu.to_string(),
            }))?
        )?;
    } else {
        zerocast_app::say!(
            "desktop: {} — compositor: {}",
            desktop
                .current_desktop
                .as_deref()
                .unwrap_or("unknown (XDG_CURRENT_DESKTOP unset)"),
            desktop
                .compositor
                .as_ref()
                .map_or("none found (no Wayland socket)".to_string(), |p| p
                    .to_string())
        )?;
        if !programs.is_empty() {
            zerocast_app::say!(
                "portal programs: {}",
                programs
                    .iter()
                    .map(|(label, p)| format!("{label}: {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        match &portal {
            Ok(c) => {
                zerocast_app::say!(
                    "portal: ScreenCast v{}, cursor modes: {}, sources: {}, backends: {}",
                    c.version,
                    join(&c.cursor_modes),
                    join(&c.source_types),
                    if backends.is_empty() {
                        "none running (activated on use)".to_string()
                    } else {
                        backends.join(", ")
                    }
                )?;
                if c.cursor_modes
                    .contains(&zerocast_portal::CursorMode::Metadata)
                {
                    zerocast_app::say!(
                        "portal: cursor mode metadata is offered but not used (the pointer would be missing from the file)"
                    )?;
                }
                zerocast_app::say!(
                    "portal: stored restore tokens: {}{}",
                    if tokens.is_empty() {
                        "none".to_string()
                    } else {
                        join(&tokens)
                    },
                    if backends.iter().any(|b| b == "gnome") {
                        " (GNOME shows its share dialog for a source without one)"
                    } else {
                        ""
                    }
                )?;
            }
            Err(e) => zerocast_app::say!("portal: unavailable — {e}")?,
        }
        zerocast_app::say!(
            "shortcuts: {} — {}",
            match shortcuts.mechanism.as_str() {
                "portal" => "GlobalShortcuts portal",
                "gnome-extension" => "GNOME extension keybindings",
                "pending" => "pending (the tray is binding them)",
                other => other,
            },
            shortcuts.reason
        )?;
        match &audio {
            Ok(sources) => {
                zerocast_app::say!("audio codecs: {}", audio_codecs.join(", "))?;
                for (name, description) in sources {
                    match description {
                        Some(d) => zerocast_app::say!("audio source {name}: {d}")?,
                        None => zerocast_app::say!("audio source {name}")?,
                    }
                }
            }
            Err(e) => zerocast_app::say!("audio: unavailable — {e}")?,
        }
        zerocast_app::say!("{gpu}")?;
        for (codec, r) in &nvenc {
            match r {
                Ok(name) => zerocast_app::say!("NVENC {codec}: {name}")?,
                Err(why) => zerocast_app::say!("NVENC {codec}: unavailable — {why}")?,
            }
        }
        for (codec, names) in &encoders {
            zerocast_app::say!(
                "encoder {codec}: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )?;
        }
        for (container, codecs) in &containers {
            zerocast_app::say!("container {container}: {}", codecs.join(", "))?;
        }
        for (key, r) in &ranges {
            zerocast_app::say!("range {key}: {}", r.describe())?;
        }
    }
    Ok(0)
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
