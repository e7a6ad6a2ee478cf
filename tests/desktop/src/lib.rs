//! zerocast-testdesk: a headless Wayland desktop for end-to-end tests.
//!
//! [`Desktop::start`] brings up a private D-Bus session bus, PipeWire, WirePlumber, sway
//! (headless, pixman), the painter (known, animated content: [`layout`]), a patched
//! xdg-desktop-portal-wlr and xdg-desktop-portal. See tests/desktop/README.md.

pub mod audio;
pub mod avsync;
pub mod desktop;
mod fake_input;
pub mod layout;
pub mod painter;
pub mod session;

pub use desktop::{Component, Desktop, DesktopOptions, Flavour, Screenshot};
pub use layout::{Content, Layout};

/// Says on the suite's output that `test` did not run here and why. Straight to stderr (not
/// `eprintln!`, which libtest captures), in one write so parallel tests do not interleave: a
/// skip must be visible, never look like a pass. The line starts with `SKIPPED` so that
/// `scripts/test.sh` can count them.
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}
