//! An error chain as one line for a terminal: `zerocast: what failed: why: the cause`.

use std::error::Error;

/// Joins an error and its causes with `: `, each cause once. Many errors already print their
/// source inside their own message (zbus's "Failed to connect to address …: No such file or
/// directory (os error 2)" and then the `io::Error` again as its `source()`); `{:#}` would
/// print such a cause twice, so a cause whose text the last one shown already contains is
/// left out.
pub fn one_line<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for e in chain {
        let msg = e.to_string();
        if msg.is_empty() || last.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
        last = msg;
    }
    out
}

/// An error's whole chain, starting with itself (`anyhow::Error::chain` for a plain error).
pub fn chain<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn Error + 'static)| (*e).source())
}

/// Standard output's reader went away (`zerocast probe | head -1`, `grep -q`, a waybar that
/// quit). Not a failure of the command: the binary exits quietly on it, where `println!` would
/// panic with "failed printing to stdout".
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct StdoutClosed;

/// Writes one line to standard output, flushed. A closed pipe becomes [`StdoutClosed`], any
/// other write error stays an `io::Error`.
pub fn say(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` for commands: `say!("{x}")?` — see [`say`].
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {
        $crate::report::say(format_args!($($t)*))
    };
}

/// Whether `e` is (or was caused by) [`StdoutClosed`].
pub fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// An error with a message and an optional source, like a context layer or a library error.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<dyn Error + 'static>>);

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref()
        }
    }

    #[test]
    fn each_cause_once() {
        // What `zerocast ctl status` printed with no session bus: zbus's message ends with its
        // source's, which `{:#}` then printed again.
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let io_text = io.to_string();
        let zbus_text: &'static str = Box::leak(
            format!("Failed to connect to address `unix:path=/x`: {io_text}").into_boxed_str(),
        );
        let e = E(
            "cannot connect to the session bus",
            Some(Box::new(E(zbus_text, Some(Box::new(io))))),
        );
        assert_eq!(
            one_line(chain(&e)),
            format!("cannot connect to the session bus: {zbus_text}")
        );
        assert_eq!(one_line(chain(&e)).matches(&io_text).count(), 1);
    }

    #[test]
    fn distinct_causes_all_shown() {
        let e = E(
            "recording to /v/a.mkv",
            Some(Box::new(E(
                "no encoder for av1",
                Some(Box::new(E("libsvtav1 missing", None))),
            ))),
        );
        assert_eq!(
            one_line(chain(&e)),
            "recording to /v/a.mkv: no encoder for av1: libsvtav1 missing"
        );
        assert_eq!(one_line(chain(&E("alone", None))), "alone");
    }
}
