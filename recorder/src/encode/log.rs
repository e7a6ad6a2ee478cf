//! FFmpeg's log output goes through `tracing` instead of stderr, errors only.

use std::cell::RefCell;
use std::sync::Once;

use ffmpeg_next::ffi;

/// Initialises FFmpeg once per process: registers devices/formats (a no-op on 5.x) and routes
/// its log to `tracing` at error level. Safe to call from any thread, any number of times.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        // SAFETY: plain setters of libavutil globals, called once before any encoder exists.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_ERROR);
            install_callback();
        }
    });
}

thread_local! {
    /// Lines captured instead of logged while [`capture`] runs on this thread.
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f`, collecting FFmpeg's error lines from this thread instead of logging them: an
/// expected failure (probing NVENC) becomes one reason string, not a burst of errors.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    init();
    let prev = CAPTURED.with(|c| c.replace(Some(Vec::new())));
    let r = f();
    let lines = CAPTURED.with(|c| c.replace(prev)).unwrap_or_default();
    (r, lines)
}

/// Hands `text` to an active [`capture`]; false when none runs on this thread.
fn captured(text: &str) -> bool {
    CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(text.to_owned());
            true
        }
        None => false,
    })
}

#[cfg(target_arch = "x86_64")]
unsafe fn install_callback() {
    // SAFETY: `log_callback` has exactly the C signature av_log expects and is 'static.
    unsafe { ffi::av_log_set_callback(Some(log_callback)) }
}

// On other architectures `va_list` is not a pointer; keep FFmpeg's default (stderr) callback,
// which still honours the level set above.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn install_callback() {}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn log_callback(
    avcl: *mut libc::c_void,
    level: libc::c_int,
    fmt: *const libc::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    // SAFETY: av_log calls us with a valid format string and its va_list, which we forward
    // unchanged, once, to av_log_format_line2; the output buffer is ours and NUL-terminated by
    // it (truncating long lines).
    unsafe {
        if level > ffi::av_log_get_level() {
            return;
        }
        let mut line = [0 as libc::c_char; 1024];
        let mut prefix: libc::c_int = 1;
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            line.as_mut_ptr(),
            line.len() as libc::c_int,
            &mut prefix,
        );
        let text = std::ffi::CStr::from_ptr(line.as_ptr()).to_string_lossy();
        let text = text.trim_end();
        if level <= ffi::AV_LOG_ERROR && captured(text) {
            return;
        }
        if level <= ffi::AV_LOG_ERROR {
            tracing::error!(target: "ffmpeg", "{text}");
        } else if level <= ffi::AV_LOG_WARNING {
            tracing::warn!(target: "ffmpeg", "{text}");
        } else {
            tracing::debug!(target: "ffmpeg", "{text}");
        }
    }
}
