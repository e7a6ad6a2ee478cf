//! zerocast-portal
