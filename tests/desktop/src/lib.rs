//! zerocast-testdesk: a headless Wayland desktop for end-to-end tests.
//!
//! [`Desktop::start`] brings up a private D-Bus session bus, PipeWire, WirePlumber, sway
//! (headless, pixman), the painter (known, animated content: [`layout`]), a patched
//! xdg-desktop-portal-wlr and xdg-desktop-portal. See tests/desktop/README.md.

pub mod audio;
pub mod avsync;
pub mod desktop;
pub mod layout;
pub mod painter;
pub mod session;

pub use desktop::{Component, Desktop, DesktopOptions, Flavour, Screenshot};
pub use layout::{Content, Layout};
