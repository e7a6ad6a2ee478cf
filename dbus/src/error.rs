//! The errors the service returns, and how request, portal and recorder errors map onto them.

use zerocast_app::{RequestError, StartError};
use zerocast_portal::PortalError;
use zerocast_recorder::RecorderError;

/// `org.zerocast.Error.*`. The message says what to do; the name says what happened, so
/// scripts can branch on it.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.zerocast.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An option key is unknown, has the wrong type or an invalid value (the message names it).
    InvalidOption(String),
    /// No xdg-desktop-portal, or it has no ScreenCast backend.
    PortalUnavailable(String),
    /// The user dismissed the source dialog.
    PortalCancelled(String),
    /// No encoder for the requested codec/encoder family.
    EncoderUnavailable(String),
    /// The output file cannot be created (missing directory, permissions, path in use).
    OutputNotWritable(String),
    OutOfDiskSpace(String),
    /// The compositor ended the stream.
    StreamLost(String),
    /// Stop/Pause on a recording that is not running (already finished, failed or paused).
    NotRecording(String),
    /// Resume on a recording that is not paused.
    NotPaused(String),
    /// Audio was asked for but a source does not exist or there is no audio server.
    AudioUnavailable(String),
    /// SaveReplay on a recording that is not in replay mode.
    NotReplay(String),
    /// Anything else (PipeWire, encoder internals, portal protocol errors).
    Failed(String),
}

impl Error {
    /// The short D-Bus name without the prefix, e.g. `StreamLost` (for `Failed` signals).
    pub fn short_name(&self) -> &'static str {
        match self {
            Error::ZBus(_) => "Failed",
            Error::InvalidOption(_) => "InvalidOption",
            Error::PortalUnavailable(_) => "PortalUnavailable",
            Error::PortalCancelled(_) => "PortalCancelled",
            Error::EncoderUnavailable(_) => "EncoderUnavailable",
            Error::OutputNotWritable(_) => "OutputNotWritable",
            Error::OutOfDiskSpace(_) => "OutOfDiskSpace",
            Error::StreamLost(_) => "StreamLost",
            Error::NotRecording(_) => "NotRecording",
            Error::NotPaused(_) => "NotPaused",
            Error::AudioUnavailable(_) => "AudioUnavailable",
            Error::NotReplay(_) => "NotReplay",
            Error::Failed(_) => "Failed",
        }
    }

    /// Full D-Bus error name, e.g. `org.zerocast.Error.StreamLost`.
    pub fn dbus_name(&self) -> String {
        format!("org.zerocast.Error.{}", self.short_name())
    }

    pub fn message(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::InvalidOption(m)
            | Error::PortalUnavailable(m)
            | Error::PortalCancelled(m)
            | Error::EncoderUnavailable(m)
            | Error::OutputNotWritable(m)
            | Error::OutOfDiskSpace(m)
            | Error::StreamLost(m)
            | Error::NotRecording(m)
            | Error::NotPaused(m)
            | Error::AudioUnavailable(m)
            | Error::NotReplay(m)
            | Error::Failed(m) => m.clone(),
        }
    }
}

impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            // zbus::Error is not Clone; a clone only ever travels to a second waiter.
            Error::ZBus(e) => Error::Failed(e.to_string()),
            Error::InvalidOption(m) => Error::InvalidOption(m.clone()),
            Error::PortalUnavailable(m) => Error::PortalUnavailable(m.clone()),
            Error::PortalCancelled(m) => Error::PortalCancelled(m.clone()),
            Error::EncoderUnavailable(m) => Error::EncoderUnavailable(m.clone()),
            Error::OutputNotWritable(m) => Error::OutputNotWritable(m.clone()),
            Error::OutOfDiskSpace(m) => Error::OutOfDiskSpace(m.clone()),
            Error::StreamLost(m) => Error::StreamLost(m.clone()),
            Error::NotRecording(m) => Error::NotRecording(m.clone()),
            Error::NotPaused(m) => Error::NotPaused(m.clone()),
            Error::AudioUnavailable(m) => Error::AudioUnavailable(m.clone()),
            Error::NotReplay(m) => Error::NotReplay(m.clone()),
            Error::Failed(m) => Error::Failed(m.clone()),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        if e.is_not_writable() {
            Error::OutputNotWritable(e.to_string())
        } else {
            Error::InvalidOption(e.to_string())
        }
    }
}

impl From<StartError> for Error {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Portal(e) => e.into(),
            StartError::Recorder(e) => e.into(),
        }
    }
}

impl From<PortalError> for Error {
    fn from(e: PortalError) -> Self {
        let msg = e.to_string();
        match e {
            PortalError::Unavailable(_) | PortalError::ScreenCastUnsupported => {
                Error::PortalUnavailable(msg)
            }
            PortalError::Cancelled => Error::PortalCancelled(msg),
            // The portal does not offer a requested cursor mode / source type: that is an
            // option the caller can change, so name it like the other option errors.
            PortalError::Unsupported {
                what,
                value,
                available,
            } => {
                let key = if what.contains("cursor") {
                    "cursor"
                } else {
                    "source"
                };
                Error::InvalidOption(format!(
                    "'{key}' {value} is not offered by this portal (available: {available})"
                ))
            }
            PortalError::Failed(_) => Error::Failed(msg),
        }
    }
}

impl From<RecorderError> for Error {
    fn from(e: RecorderError) -> Self {
        let msg = e.to_string();
        match e {
            RecorderError::EncoderUnavailable { .. } => Error::EncoderUnavailable(msg),
            RecorderError::OutputNotWritable { .. } => Error::OutputNotWritable(msg),
            RecorderError::OutOfDiskSpace { .. } => Error::OutOfDiskSpace(msg),
            RecorderError::StreamLost(_) => Error::StreamLost(msg),
            RecorderError::NotRecording(_) => Error::NotRecording(msg),
            RecorderError::InvalidOption(_) => Error::InvalidOption(msg),
            RecorderError::Audio(_) => Error::AudioUnavailable(msg),
            RecorderError::NotReplay => Error::NotReplay(msg),
            // As SaveReplay/Keep answer while the recording is still starting: nothing to
            // save yet, try again (was `Failed`, found by tests/dbus_fuzz.rs).
            RecorderError::ReplayEmpty => Error::NotRecording(msg),
            RecorderError::PipeWire(_) | RecorderError::Encode(_) => Error::Failed(msg),
        }
    }
}
