//! [`Cause`]: a library error kept as the `source` of ours although it is not `Clone`.
//!
//! A recording's outcome is cloned to every waiter (`Recording::finished`, the replay's
//! save replies), so the recorder's errors are `Clone`; `io::Error`, PipeWire's and the
//! interop's errors and tokio's `JoinError` are not. Sharing them behind an `Arc` keeps the
//! typed cause in the chain instead of flattening it into a string. A leaf module: every part
//! of the recorder can use it.

use std::fmt;
use std::sync::Arc;

/// A cause shared by every clone of the error that carries it. It stands for the error it
/// wraps: the same `Display`, the same `source()` (so a chain shows the cause once), and
/// [`Cause::get`] for the typed value. Two are equal when they are the same cause (one `Arc`),
/// which lets an error with a cause still derive `PartialEq` for its other variants.
pub struct Cause<E>(Arc<E>);

impl<E> Cause<E> {
    pub fn new(e: E) -> Self {
        Cause(Arc::new(e))
    }

    /// The wrapped error.
    pub fn get(&self) -> &E {
        &self.0
    }
}

impl<E> From<E> for Cause<E> {
    fn from(e: E) -> Self {
        Cause::new(e)
    }
}

impl<E> Clone for Cause<E> {
    fn clone(&self) -> Self {
        Cause(Arc::clone(&self.0))
    }
}

impl<E> PartialEq for Cause<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<E> Eq for Cause<E> {}

impl<E: fmt::Debug> fmt::Debug for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Display> fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Cause<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn stands_for_its_error() {
        let c = Cause::new(std::io::Error::other("disk on fire"));
        assert_eq!(c.to_string(), "disk on fire");
        assert_eq!(c.get().kind(), std::io::ErrorKind::Other);
        assert!(c.source().is_none());
        let d = c.clone();
        assert_eq!(c, d);
        assert_ne!(c, Cause::new(std::io::Error::other("disk on fire")));
    }
}
