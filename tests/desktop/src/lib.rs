//! zerocast-testdesk
