//! `zerocast ctl`: a thin client of the daemon. It validates nothing itself — the daemon's
//! option parser is the one place that does — so `ctl` and `busctl` get the same errors.

use std::collections::HashMap;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::json;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::Connection;
use zerocast_client::State;

use zerocast_app::cli::RequestArgs;
use zerocast_app::options::Surface;
use zerocast_app::path::from_cwd;

use crate::feed::value_json;
use crate::service::{BUS_NAME, MANAGER_PATH};

// The typed proxies live in the client crate, shared with the tray and the feed; re-exported
// for this crate's tests and users.
pub use zerocast_client::{RecorderProxy, RecordingProxy};

/// `zerocast ctl …`. RECORDING is a number (`3`), an object path, or omitted for the newest
/// running recording.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Start a recording and print its object path (the daemon validates every option).
    // Boxed: the flags are most of the enum's size, and the other commands carry little.
    // `--path` beside `-o`/`--output`: the D-Bus key's name, which `ctl start` always took.
    #[command(mut_arg("output", |a| a.visible_alias("path")))]
    Start(Box<StartArgs>),
    /// Stop a recording; prints the output path once the file is finalized.
    Stop { recording: Option<String> },
    /// Pause a recording (the paused time is left out of the file).
    Pause { recording: Option<String> },
    /// Resume a paused recording.
    Resume { recording: Option<String> },
    /// Replay: write the last seconds of a replay to a file (the replay keeps running); prints
    /// the path once the file is complete.
    SaveReplay {
        recording: Option<String>,
        /// Output file or template (relative: from the current directory); default
        /// zerocast-replay-%d-%t in the videos folder.
        #[arg(short = 'o', long)]
        path: Option<String>,
        /// How many seconds (default: all the replay holds).
        #[arg(long)]
        seconds: Option<f64>,
        /// Replace the output file if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Replay: turn it into a normal recording that starts with what the replay holds
    /// ("record from N seconds ago"); prints the file's path. Stop ends it as usual.
    Keep {
        recording: Option<String>,
        /// Output file (relative: from the current directory); default: the path given at start.
        #[arg(short = 'o', long)]
        path: Option<String>,
        /// Replace the output file if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Show recordings (all, or one).
    Status {
        recording: Option<String>,
        /// Machine-readable JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print property changes of a recording until it ends (exit status 1 if it failed); with
    /// --json or --format waybar, one line per change of whatever records, until interrupted
    /// (for status bars: driven by the daemon's signals, never starts a daemon).
    Watch {
        recording: Option<String>,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        #[arg(long, value_enum)]
        format: Option<crate::feed::Format>,
        /// waybar text with the symbols ⏺/⏸ instead of REC/PAUSED (for fonts that have them).
        #[arg(long)]
        glyphs: bool,
    },
    /// Forget the remembered screen/window so the next start asks again.
    ForgetSources,
}

/// `ctl start`'s flags: `zerocast record`'s request flags (the same clap arguments, so the
/// same names, help and values, a negative `--fps` included), and what only a bus client has.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Stop when this `ctl` process exits (it then waits until the recording ends).
    #[arg(long)]
    pub stop_on_disconnect: bool,
    /// No desktop notification when the recording ends.
    #[arg(long)]
    pub no_notify: bool,
}

impl StartArgs {
    /// The `Start` options: the request as typed, a relative `-o` made absolute here (the
    /// daemon's relative paths go to the videos folder). Errors in the command line's words.
    fn to_options(&self) -> anyhow::Result<HashMap<String, OwnedValue>> {
        let mut request = self.request.clone();
        request.output_from_cwd().context("current directory")?;
        let mut raw = request.to_raw();
        raw.stop_on_disconnect = self.stop_on_disconnect.then_some(true);
        raw.notify = self.no_notify.then_some(false);
        raw.to_dbus().map_err(|e| {
            // Refused before sending (a number the wire cannot carry): as the daemon would.
            let name = crate::Error::from(e.clone()).dbus_name();
            anyhow::anyhow!("{name}: {}", e.render(Surface::Cli))
        })
    }
}

/// A borrowed `a{sv}` for the proxies.
fn borrowed(options: &HashMap<String, OwnedValue>) -> anyhow::Result<HashMap<&str, Value<'_>>> {
    options
        .iter()
        .map(|(k, v)| Ok((k.as_str(), v.try_clone()?.into())))
        .collect()
}

/// Runs one `ctl` command; returns the process exit status.
pub async fn run_ctl(cmd: CtlCommand) -> anyhow::Result<i32> {
    // `start`'s options first: what needs no daemon (a negative --fps) is refused as `record`
    // refuses it, with or without a bus.
    let start = match &cmd {
        CtlCommand::Start(args) => Some(args.to_options()?),
        _ => None,
    };
    let conn = Connection::session()
        .await
        .context("cannot connect to the session bus")?;
    let result = run(&conn, cmd, start).await;
    result.map_err(|e| match e.downcast::<zbus::Error>() {
        Ok(e) => anyhow::anyhow!(describe_error(&e)),
        Err(e) => e,
    })
}

/// A D-Bus error as a user reads it: the name (for scripts) and the message.
fn describe_error(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
        {
            format!(
                "the zerocast daemon is not running and cannot be activated; run `zerocast daemon` ({name})"
            )
        }
        e => zerocast_client::describe(e),
    }
}

/// Runs `cmd`; `start` holds `ctl start`'s options, made before connecting.
async fn run(
    conn: &Connection,
    cmd: CtlCommand,
    start: Option<HashMap<String, OwnedValue>>,
) -> anyhow::Result<i32> {
    let manager = RecorderProxy::new(conn).await?;
    match cmd {
        CtlCommand::Start(args) => {
            let stop_on_disconnect = args.stop_on_disconnect;
            let options = match start {
                Some(o) => o,
                None => args.to_options()?,
            };
            let path = match manager.start(borrowed(&options)?).await {
                Ok(p) => p,
                Err(e) => return Err(start_refused(e, options).await),
            };
            zerocast_app::say!("{}", path.as_str())?;
            if stop_on_disconnect {
                // The recording lives as long as this process: follow it.
                return watch(conn, path).await;
            }
            Ok(0)
        }
        CtlCommand::Stop { recording } => {
            let rec = recording_proxy(conn, &manager, recording.as_deref()).await?;
            zerocast_app::say!("{}", rec.stop().await?)?;
            Ok(0)
        }
        CtlCommand::Pause { recording } => {
            recording_proxy(conn, &manager, recording.as_deref())
                .await?
                .pause()
                .await?;
            Ok(0)
        }
        CtlCommand::Resume { recording } => {
            recording_proxy(conn, &manager, recording.as_deref())
                .await?
                .resume()
                .await?;
            Ok(0)
        }
        CtlCommand::Keep {
            recording,
            path,
            overwrite,
        } => {
            let rec = recording_proxy(conn, &manager, recording.as_deref()).await?;
            let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
            if let Some(p) = path {
                opts.insert(
                    "path",
                    Value::from(from_cwd(&p).context("current directory")?),
                );
            }
            if overwrite {
                opts.insert("overwrite", Value::from(true));
            }
            zerocast_app::say!("{}", rec.keep(opts).await?)?;
            Ok(0)
        }
        CtlCommand::SaveReplay {
            recording,
            path,
            seconds,
            overwrite,
        } => {
            let rec = recording_proxy(conn, &manager, recording.as_deref()).await?;
            let mut opts: HashMap<&str, Value<'_>> = HashMap::new();
            if let Some(p) = path {
                opts.insert(
                    "path",
                    Value::from(from_cwd(&p).context("current directory")?),
                );
            }
            if let Some(s) = seconds {
                opts.insert("seconds", Value::from(s));
            }
            if overwrite {
                opts.insert("overwrite", Value::from(true));
            }
            let (path, info) = rec.save_replay(opts).await?;
            let secs = info
                .get("seconds")
                .and_then(|v| f64::try_from(v).ok())
                .unwrap_or(0.0);
            let whole = info
                .get("whole-ring")
                .and_then(|v| bool::try_from(v).ok())
                .unwrap_or(false);
            eprintln!(
                "zerocast: saved {secs:.1} s{}",
                if whole { " (all the replay held)" } else { "" }
            );
            zerocast_app::say!("{path}")?;
            Ok(0)
        }
        CtlCommand::Status { recording, json } => {
            let paths = match recording {
                Some(r) => vec![parse_target(&r)?],
                None => manager.recordings().await?,
            };
            let mut items = Vec::new();
            for p in paths {
                items.push(status_json(conn, p).await?);
            }
            if json {
                let out = json!({ "version": manager.version().await?, "recordings": items });
                zerocast_app::say!("{}", serde_json::to_string_pretty(&out)?)?;
            } else if items.is_empty() {
                zerocast_app::say!("no recordings")?;
            } else {
                for i in &items {
                    zerocast_app::say!("{}", status_line(i))?;
                }
            }
            Ok(0)
        }
        CtlCommand::Watch {
            recording,
            json,
            format,
            glyphs,
        } => {
            let format = if json {
                crate::feed::Format::Json
            } else {
                format.unwrap_or(crate::feed::Format::Text)
            };
            if format != crate::feed::Format::Text {
                if let Some(r) = recording {
                    bail!("--json and --format {format:?} follow every recording; leave out {r:?}");
                }
                return crate::feed::run(conn, format, glyphs).await;
            }
            let path = match recording {
                Some(r) => parse_target(&r)?,
                None => newest_running(conn, &manager).await?,
            };
            watch(conn, path).await
        }
        CtlCommand::ForgetSources => {
            manager.forget_sources().await?;
            Ok(0)
        }
    }
}

/// A refused `Start` in the words `ctl start` was typed in. The daemon answers in D-Bus keys
/// and units (`'replay-max-bytes' needs 'replay'`); the same options through the same parser
/// here give the same error, which is then worded for the command line (`--replay-max-mb needs
/// --replay`). When the local verdict differs (another videos folder, a file that appeared in
/// between) the daemon's message is shown as it came.
async fn start_refused(e: zbus::Error, options: HashMap<String, OwnedValue>) -> anyhow::Error {
    let zbus::Error::MethodError(name, Some(msg), _) = &e else {
        return e.into();
    };
    if !matches!(
        name.as_str(),
        "org.zerocast.Error.InvalidOption" | "org.zerocast.Error.OutputNotWritable"
    ) {
        return e.into();
    }
    // The parser checks the output on the filesystem: off the async workers.
    let local =
        tokio::task::spawn_blocking(move || zerocast_app::dbus::parse_options(&options)).await;
    match cli_words(local.ok().and_then(Result::err), msg) {
        Some(words) => anyhow::anyhow!("{name}: {words}"),
        None => e.into(),
    }
}

/// The CLI wording of `local` when it is the error the daemon sent as `daemon_says`.
fn cli_words(local: Option<zerocast_app::RequestError>, daemon_says: &str) -> Option<String> {
    local
        .filter(|l| l.to_string() == daemon_says)
        .map(|l| l.render(Surface::Cli))
}

fn parse_target(s: &str) -> anyhow::Result<OwnedObjectPath> {
    let p = if s.starts_with('/') {
        s.to_owned()
    } else {
        format!("{MANAGER_PATH}/recording/{s}")
    };
    OwnedObjectPath::try_from(p.clone()).with_context(|| format!("not a recording: {s}"))
}

async fn recording_proxy<'a>(
    conn: &Connection,
    manager: &RecorderProxy<'a>,
    target: Option<&str>,
) -> anyhow::Result<RecordingProxy<'static>> {
    let path = match target {
        Some(t) => parse_target(t)?,
        None => newest_running(conn, manager).await?,
    };
    Ok(RecordingProxy::builder(conn).path(path)?.build().await?)
}

async fn newest_running(
    conn: &Connection,
    manager: &RecorderProxy<'_>,
) -> anyhow::Result<OwnedObjectPath> {
    for p in manager.recordings().await?.into_iter().rev() {
        let rec = RecordingProxy::builder(conn)
            .path(p.clone())?
            .build()
            .await?;
        if rec.parsed_state().await.is_ok_and(|s| !s.is_over()) {
            return Ok(p);
        }
    }
    bail!("no running recording")
}

async fn status_json(
    conn: &Connection,
    path: OwnedObjectPath,
) -> anyhow::Result<serde_json::Value> {
    let rec = RecordingProxy::builder(conn)
        .path(path.clone())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let id = path.as_str().rsplit('/').next().unwrap_or("").to_owned();
    Ok(json!({
        "id": id.parse::<u64>().ok(),
        "object": path.as_str(),
        "state": rec.state().await?,
        "path": rec.path().await?,
        "duration": rec.duration().await?,
        "frames": rec.frames().await?,
        "dropped_frames": rec.dropped_frames().await?,
        "bytes": rec.bytes().await?,
        "encoder": rec.encoder().await?,
        "capture_path": rec.capture_path().await?,
        "options": dict_json(&rec.options().await?),
        // Sorted by name, like the options.
        "warnings": rec.warnings().await?.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

/// One line per recording, then one per named warning of its session (indented).
fn status_line(i: &serde_json::Value) -> String {
    let mut line = format!(
        "{:>3}  {:<9}  {:>8.1} s  {:>6} frames ({} dropped)  {:>7.1} MB  {} {}  {}",
        i["id"],
        i["state"].as_str().unwrap_or(""),
        i["duration"].as_f64().unwrap_or(0.0),
        i["frames"],
        i["dropped_frames"],
        i["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        i["encoder"].as_str().unwrap_or(""),
        i["capture_path"].as_str().unwrap_or(""),
        i["path"].as_str().unwrap_or(""),
    );
    if let Some(w) = i["warnings"].as_object() {
        for (name, message) in w {
            line.push_str(&format!(
                "\n     warning {name}: {}",
                message.as_str().unwrap_or("")
            ));
        }
    }
    line
}

fn dict_json(m: &HashMap<String, OwnedValue>) -> serde_json::Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    serde_json::Value::Object(
        keys.into_iter()
            .map(|k| (k.clone(), value_json(&m[k])))
            .collect(),
    )
}

/// Prints changes until the recording ends; 0 when it finished, 1 when it failed.
async fn watch(conn: &Connection, path: OwnedObjectPath) -> anyhow::Result<i32> {
    let rec = RecordingProxy::builder(conn)
        .path(path.clone())?
        .build()
        .await?;
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(BUS_NAME)?
        .path(path.clone())?
        .build()
        .await?;
    // Subscribe before reading the state, so no change falls in between.
    let mut changes = props.receive_properties_changed().await?;
    let mut finished = rec.receive_finished().await?;
    let mut failed = rec.receive_failed().await?;
    let state = rec.parsed_state().await?;
    zerocast_app::say!("{} State={state} Path={}", path.as_str(), rec.path().await?)?;
    match state {
        State::Finished => return Ok(0),
        State::Failed => return Ok(1),
        _ => {}
    }
    loop {
        tokio::select! {
            Some(sig) = changes.next() => {
                let args = sig.args()?;
                let mut keys: Vec<_> = args.changed_properties().keys().collect();
                keys.sort();
                let line: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{k}={}", value_json(&args.changed_properties()[k])))
                    .collect();
                zerocast_app::say!("{}", line.join(" "))?;
            }
            Some(sig) = finished.next() => {
                let args = sig.args()?;
                zerocast_app::say!("Finished path={} stats={}", args.path(), dict_json(args.stats()))?;
                return Ok(0);
            }
            Some(sig) = failed.next() => {
                let args = sig.args()?;
                eprintln!("Failed {}: {}", args.error_name(), args.message());
                return Ok(1);
            }
            else => bail!("lost the connection to the daemon"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Ctl {
        #[command(subcommand)]
        cmd: CtlCommand,
    }

    fn start(args: &[&str]) -> StartArgs {
        let mut argv = vec!["ctl", "start"];
        argv.extend(args);
        match Ctl::try_parse_from(argv).unwrap().cmd {
            CtlCommand::Start(a) => *a,
            _ => unreachable!(),
        }
    }

    /// What the daemon would answer (its parser, its D-Bus words) and what `ctl` then shows.
    fn refusal(args: &[&str]) -> (String, Option<String>) {
        let options = start(args).to_options().unwrap();
        let e = zerocast_app::dbus::parse_options(&options).expect_err("refused");
        let daemon_says = e.to_string();
        (daemon_says.clone(), cli_words(Some(e), &daemon_says))
    }

    #[test]
    fn start_refusals_name_the_flags_typed() {
        let (dbus, cli) = refusal(&["--replay-max-mb", "5"]);
        assert_eq!(dbus, "'replay-max-bytes' needs 'replay'");
        assert_eq!(cli.as_deref(), Some("--replay-max-mb needs --replay"));
        let (_, cli) = refusal(&["--replay", "5", "--replay-max-mb", "0"]);
        assert_eq!(
            cli.as_deref(),
            Some("--replay-max-mb must be >= 1 and <= 262144 MiB, got 0")
        );
        let (_, cli) = refusal(&["--fps", "0"]);
        assert_eq!(
            cli.as_deref(),
            Some("--framerate must be > 0 and <= 1000, got 0")
        );
        // A verdict that is not the daemon's is not reworded.
        let other = zerocast_app::RequestError::MetadataCursor;
        assert_eq!(cli_words(Some(other), "'framerate' must be …"), None);
    }

    #[test]
    fn start_takes_record_flags_and_words() {
        // Refused before sending: the wire type cannot carry it, and the words are `record`'s.
        let e = start(&["--fps", "-1"]).to_options().unwrap_err();
        assert_eq!(
            e.to_string(),
            "org.zerocast.Error.InvalidOption: --framerate must be > 0 and <= 1000, got -1"
        );
        let record = zerocast_app::cli::RequestArgs {
            framerate: Some(-1),
            ..Default::default()
        };
        let record_says = record.parse().unwrap_err().render(Surface::Cli);
        assert!(e.to_string().ends_with(&record_says), "{e} / {record_says}");
        // Everything `record` has, `--path` as before, and what only a bus client has.
        let o = start(&[
            "--path",
            "/v/a.mkv",
            "--audio",
            "desktop",
            "--audio-codec",
            "opus",
            "--audio-bitrate",
            "96",
            "--no-notify",
            "--stop-on-disconnect",
        ])
        .to_options()
        .unwrap();
        let raw = zerocast_app::dbus::to_raw(&o).unwrap();
        assert_eq!(raw.path.as_deref(), Some("/v/a.mkv"));
        assert_eq!(raw.audio_codec.as_deref(), Some("opus"));
        assert_eq!(raw.audio_bitrate, Some(96));
        assert_eq!(
            (raw.notify, raw.stop_on_disconnect),
            (Some(false), Some(true))
        );
        // A relative `-o` is taken from here.
        let o = start(&["-o", "clip.mkv"]).to_options().unwrap();
        let sent = zerocast_app::dbus::to_raw(&o).unwrap().path.unwrap();
        let here = std::env::current_dir().unwrap().join("clip.mkv");
        assert_eq!(std::path::Path::new(&sent), here);
    }

    #[test]
    fn start_help_in_cli_words() {
        let mut cmd = Ctl::command();
        let help = cmd
            .find_subcommand_mut("start")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--replay-max-mb"), "{help}");
        assert!(help.contains("[1–262144]"), "{help}");
        assert!(
            !help.contains("1048576"),
            "a byte range next to a MiB flag: {help}"
        );
        assert!(help.contains("needs --replay"), "{help}");
        assert!(!help.contains("'replay'"), "{help}");
        assert!(help.contains("--no-restore") && help.contains("Ask for the source every time"));
        for line in help.lines() {
            let text = line.trim();
            assert!(
                !text.contains("   "),
                "a run of spaces inside a help line: {line:?}"
            );
        }
    }
}
