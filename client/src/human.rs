//! A recording's figures as people read them: `1:02:05`, `3.4 MB`. The tray's menu and the
//! daemon's end-of-recording notification show the same figures, so they read them the same way.

/// Whole seconds as `M:SS`, or `H:MM:SS` from an hour on.
pub fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// A file size in decimal units: `3.4 MB`, `1.50 GB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(59), "0:59");
        assert_eq!(clock(3725), "1:02:05");
        assert_eq!(size(3_400_000), "3.4 MB");
        assert_eq!(size(1_500_000_000), "1.50 GB");
    }
}
