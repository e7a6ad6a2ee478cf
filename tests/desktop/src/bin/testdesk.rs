//! zerocast-testdesk: run a command inside a fresh headless desktop.
//!
//! ```text
//! zerocast-testdesk [--width W] [--height H] [--refresh HZ] [--fps N | --no-painter] [--full-motion]
//!                   [--no-portal] [--no-restore-tokens] [--gnome [--extension DIR]... | --kde]
//!                   [--keep-logs] [--debug] [-- COMMAND...]
//! ```
//! Brings the desktop up, runs COMMAND with the desktop's environment, tears everything down
//! and exits with COMMAND's status (128+signal if it was killed). Without COMMAND it prints the
//! environment as `export` lines and waits for SIGINT/SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use zerocast_testdesk::{Content, Desktop, DesktopOptions};

const USAGE: &str = "usage: zerocast-testdesk [--width W] [--height H] [--refresh HZ] \
[--fps N | --no-painter] [--full-motion] [--no-portal] [--no-restore-tokens] [--gnome [--extension DIR]... | --kde] [--keep-logs] [--debug] \
[--timeout SECS] [-- COMMAND...]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zerocast-testdesk: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut opts = DesktopOptions::default();
    let mut keep = false;
    let mut command: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--width" => opts.width = value("--width")?.parse()?,
            "--height" => opts.height = value("--height")?.parse()?,
            "--refresh" => opts.refresh_hz = value("--refresh")?.parse()?,
            "--fps" => opts.painter_fps = Some(value("--fps")?.parse()?),
            "--timeout" => opts.timeout = Duration::from_secs_f64(value("--timeout")?.parse()?),
            "--no-painter" => opts.painter_fps = None,
            "--full-motion" => opts.painter_content = Content::FullMotion,
            "--no-portal" => opts.portal = false,
            "--gnome" => opts.flavour = zerocast_testdesk::Flavour::Gnome,
            "--kde" => opts.flavour = zerocast_testdesk::Flavour::Kde,
            "--extension" => opts.gnome_extensions.push(value("--extension")?.into()),
            "--no-restore-tokens" => opts.restore_tokens = false,
            "--keep-logs" => keep = true,
            "--debug" => opts.debug = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--" => {
                command = it.collect();
                break;
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }

    let mut desk = Desktop::start(opts)?;
    if keep {
        desk.keep_logs();
    }
    eprintln!(
        "zerocast-testdesk: desktop up in {} ms ({})",
        desk.startup_time().as_millis(),
        desk.dir().display()
    );

    if command.is_empty() {
        for (k, v) in desk.env() {
            println!("export {k}='{v}'");
        }
        wait_for_termination();
        return Ok(ExitCode::SUCCESS);
    }

    let mut child = desk
        .command(&command[0])
        .args(&command[1..])
        .spawn()
        .with_context(|| format!("starting {:?}", command[0]))?;
    // The terminal's Ctrl-C reaches the command too (same process group); ignore it here so
    // that we outlive the command and can tear the desktop down.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = child.wait()?;
    drop(desk);

    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Blocks until SIGINT or SIGTERM arrives.
fn wait_for_termination() {
    // SAFETY: the sigset is initialised by sigemptyset before use; blocking the two signals
    // and waiting for them synchronously involves no handler code.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
