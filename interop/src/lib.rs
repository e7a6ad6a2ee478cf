//! zerocast-interop
