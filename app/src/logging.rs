//! Log destination: the journal when systemd started us (`JOURNAL_STREAM` names our stderr),
//! stderr otherwise. `ZEROCAST_LOG` (else `RUST_LOG`) filters, for every command.

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

fn filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_env("ZEROCAST_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter))
}

/// For the short-lived commands (`record`, `ctl`, `probe`): stderr, quiet unless `-v`.
pub fn init_cli(verbose: u8) {
    let default = match verbose {
        0 => "warn,zbus=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter(default))
        .with_writer(std::io::stderr)
        .init();
}

/// For the daemon: the journal under systemd, else stderr. `default_filter` applies when
/// neither `ZEROCAST_LOG` nor `RUST_LOG` is set.
pub fn init(default_filter: &str) {
    let registry = tracing_subscriber::registry().with(filter(default_filter));
    if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(journald) => {
                registry
                    .with(journald.with_syslog_identifier("zerocast".into()))
                    .init();
                return;
            }
            Err(e) => eprintln!("zerocast: journald unavailable ({e}); logging to stderr"),
        }
    }
    registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .init();
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` of the stream it connected to stderr; only
/// if stderr is still that stream is it the journal (a child may have redirected it).
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat on fd 2 with a zeroed, correctly sized stat buffer (all-zero is a valid
    // `stat`).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 may be closed; fstat then fails with EBADF and writes nothing.
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}
