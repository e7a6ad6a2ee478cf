//! zerocast's front door: every recording request, from any surface, goes through here.
//!
//! ```text
//!  zerocast record flags ──cli::RequestArgs──┐
//!                                            ├─► RawRequest ──resolve──► RecordingRequest
//!  D-Bus Start(a{sv}) ────dbus::parse_options┘    (as given)   (defaults,   (validated, path
//!                                                               rules,       checked writable)
//!                                                               checks)           │
//!                          compose::start_recording: encoder selection (once) ────┘
//!                          → portal session → recorder on its stream
//! ```
//!
//! - [`options`]: the option table (keys, D-Bus types, CLI flags, help, ranges) — a new option
//!   is one row there, one field of [`RawRequest`]/[`RecordingRequest`], and one parse arm per
//!   surface ([`cli`], [`dbus`]).
//! - [`request`]: [`RecordingRequest`], its defaults and validation, and [`RequestError`].
//! - [`path`]: the output-path rules (templates, `~/`, relative → the videos folder, default
//!   name, writable/overwrite checks before the portal).
//! - [`caps`]: the capability tables that `zerocast probe`, D-Bus `Capabilities` and `ctl` read.
//! - [`compose`]: [`start_recording`], the one portal + recorder composition (CLI and daemon).
//! - [`logging`]: log setup (stderr, or the journal under systemd).
//! - [`report`]: an error chain as one line, each cause once.
//!
//! Parsing touches no GPU library: the encoder (and with it a default codec that depends on
//! NVENC) is selected by [`compose`], once per recording.

pub mod caps;
pub mod cli;
pub mod compose;
pub mod dbus;
pub mod logging;
pub mod options;
pub mod path;
pub mod report;
pub mod request;

pub use compose::{select_encoder, start_recording, StartError};
pub use options::KEYS;
pub use path::PathContext;
pub use request::{RawRequest, RecordingRequest, RequestError};
