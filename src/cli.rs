//! The command line of `zerocast` (clap). Its own file so that `zerocast-gendocs` (tools/gendocs)
//! can include it and write the man pages and shell completions from these very definitions:
//! they never drift from `--help`, and the shipped binary carries no generator code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use zerocast_app::cli::RequestArgs;

#[derive(Parser)]
#[command(name = "zerocast", version, about = "Wayland screen recorder")]
pub struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Record the screen to a file (Ctrl-C or SIGTERM stops and finalizes it).
    // Boxed: the flags are most of the enum's size, and the other commands carry little.
    Record(Box<RecordArgs>),
    /// Serve the org.zerocast.Recorder1 D-Bus API on the session bus.
    Daemon,
    /// Control the daemon: start, stop, pause, resume, status, watch.
    Ctl {
        #[command(subcommand)]
        cmd: zerocast_dbus::CtlCommand,
    },
    /// Tray applet (runs `zerocast-tray`, a separate binary with no recorder code in it).
    #[command(disable_help_flag = true)]
    Tray {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show what this machine can do: portal, global shortcuts, Vulkan, CUDA, encoders.
    Probe {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The recording options, shared with D-Bus `Start` (`zerocast-app`).
    #[command(flatten)]
    pub request: RequestArgs,
    /// Write the final stats as JSON to this file (benchmarks).
    #[arg(long, hide = true)]
    pub stats_json: Option<PathBuf>,
}
