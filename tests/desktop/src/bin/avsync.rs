//! zerocast-avsync: flashes the screen white and beeps at the same instant, about once a second
//! on an uneven schedule (the A/V sync test client; see `zerocast_testdesk::avsync`).
//!
//! Usage: `zerocast-avsync [--lead-in-ms N] [--refresh HZ] [--log PATH] [--target NODE]
//! [--app NAME] [--band ROWS] [--seconds N]`
//!
//! `--band ROWS`: flash only the bottom ROWS rows of the output (the rest stays visible).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use zerocast_testdesk::avsync::{run, AvSyncOptions};

fn main() -> Result<()> {
    let mut opts = AvSyncOptions::default();
    let mut seconds = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--lead-in-ms" => opts.lead_in = Duration::from_millis(val()?.parse()?),
            "--refresh" => opts.refresh_hz = val()?.parse()?,
            "--log" => opts.log = Some(val()?.into()),
            "--target" => opts.target = Some(val()?),
            "--app" => opts.app_name = val()?,
            "--band" => opts.band = Some(val()?.parse()?),
            "--seconds" => seconds = Some(val()?.parse::<f64>()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(s) = seconds {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(s));
            stop.store(true, Ordering::Relaxed);
        });
    }
    run(opts, stop)
}
