//! `zerocast-tray --help`. Its own file so that `zerocast-gendocs` (tools/gendocs) writes the
//! man page zerocast-tray(1) from this very text (the tray parses its two flags by hand, with no
//! clap to generate from).

pub const HELP: &str = "zerocast-tray: tray applet for the zerocast screen recorder

Usage: zerocast tray [-v]

Shows the recorder's state in the status area (StatusNotifierItem: KDE, waybar, XFCE,
Cinnamon, GNOME with the AppIndicator extension) with Record screen / Record window /
Pause / Stop and the last recordings. Left click starts or stops a recording.
Where the desktop offers the GlobalShortcuts portal (KDE 6, GNOME 48+, Hyprland) it binds
global shortcuts: toggle recording (Ctrl+Alt+R), pause/resume (Ctrl+Alt+P) and save replay
(Ctrl+Alt+S) by default; change them in the desktop's settings. `zerocast probe` says which
shortcuts are in effect and why.
ZEROCAST_LOG (or RUST_LOG) sets the log level.";
