//! The clock every thread of a recording reads: a leaf module, so that capture (`pw`), audio and
//! the encoder can all use it without depending on each other.

/// CLOCK_MONOTONIC in nanoseconds — the clock compositors stamp PipeWire buffers with.
pub(crate) fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
