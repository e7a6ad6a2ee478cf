//! A real ScreenCast session through xdg-desktop-portal and the patched xdpw: CreateSession →
//! SelectSources → Start returns a PipeWire node that delivers frames, and persist_mode=2
//! returns a restore token that works. This is what proves both xdpw patches.

use std::process::Stdio;
use std::time::{Duration, Instant};

use ashpd::desktop::screencast::{CursorMode, Screencast, SelectSourcesOptions, SourceType};
use ashpd::desktop::PersistMode;
use ashpd::zbus;
use zerocast_testdesk::{Desktop, DesktopOptions};

async fn start_cast(
    conn: &zbus::Connection,
    version: Option<u32>,
    token: Option<&str>,
) -> (u32, (i32, i32), Option<String>, Duration) {
    let t = Instant::now();
    let proxy = Screencast::with_connection(conn.clone()).await.unwrap();
    assert_eq!(Some(proxy.version()), version);
    let session = proxy.create_session(Default::default()).await.unwrap();
    proxy
        .select_sources(
            &session,
            SelectSourcesOptions::default()
                .set_cursor_mode(CursorMode::Hidden)
                .set_sources(ashpd::enumflags2::BitFlags::from(SourceType::Monitor))
                .set_multiple(false)
                .set_persist_mode(PersistMode::ExplicitlyRevoked)
                .set_restore_token(token),
        )
        .await
        .unwrap()
        .response()
        .unwrap();
    let streams = proxy
        .start(&session, None, Default::default())
        .await
        .unwrap()
        .response()
        .unwrap();
    let elapsed = t.elapsed();
    assert_eq!(streams.streams().len(), 1);
    let s = &streams.streams()[0];
    // Keep the session open for the rest of the test: closing it would end the stream.
    std::mem::forget(session);
    (
        s.pipe_wire_node_id(),
        s.size().unwrap(),
        streams.restore_token().map(String::from),
        elapsed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screencast_start_returns_a_node_that_delivers_frames() {
    let desk = tokio::task::spawn_blocking(|| Desktop::start(DesktopOptions::default()))
        .await
        .unwrap()
        .expect("desktop");
    let conn = zbus::connection::Builder::address(desk.bus_address())
        .unwrap()
        .build()
        .await
        .unwrap();

    let (node, size, token, took) =
        start_cast(&conn, desk.expected_screencast_version(), None).await;
    eprintln!("portal session started in {took:?}: node {node}, size {size:?}, token {token:?}");
    assert_eq!(size, (1280, 720));
    // Patch (b): with XDPW_PERSIST_MODE=permanent and persist_mode=2 a token comes back.
    let token = token.expect("restore token");

    // Frames flow: a plain PipeWire consumer on the node receives 30 buffers. (The portal's
    // OpenPipeWireRemote fd is not needed for this: as the same user we see every node.)
    // Without the media.* properties WirePlumber refuses to link it ("target not found").
    //
    // Known xdpw 0.7 bug, not ours: in about half the runs the *first* consumer after Start
    // gets nothing. xdpw sees its stream go streaming → paused → streaming while gst
    // prerolls, loses its current buffer ("no buffer to queue") and then busy-loops on
    // "out of buffers" / "no current buffer" (a core at 100%) until a consumer reconnects.
    // A second consumer then works. With PipeWire 1.6 (Debian unstable) it takes longer: in
    // 6 runs of 3-s attempts the first working consumer came 6–15 s after Start (2 to 5 in
    // vain first; a working one has its 30 buffers in 0.5–0.8 s), with 6-s attempts three in a
    // row failed in 4 of 13 runs, and one run of 3-s attempts needed 24 s. So: 3-s attempts
    // until 60 s have passed.
    let mut attempts = Vec::new();
    let first = Instant::now();
    while first.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        let out = desk
            .command("timeout")
            .args([
                "3",
                "gst-launch-1.0",
                "-q",
                "pipewiresrc",
                &format!("path={node}"),
            ])
            .arg(
                "stream-properties=props,media.type=Video,media.category=Capture,media.role=Screen",
            )
            .args([
                "num-buffers=30",
                "!",
                "video/x-raw,format=BGRx,width=1280,height=720",
            ])
            .args(["!", "fakesink", "sync=false"])
            .stdin(Stdio::null())
            .output()
            .expect("gst-launch-1.0");
        attempts.push((
            out.status,
            t.elapsed(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
        if out.status.success() {
            break;
        }
    }
    eprintln!(
        "gst-launch attempts (status, time): {:?}",
        attempts.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>()
    );
    let last = attempts.last().unwrap();
    assert!(
        last.0.success(),
        "no frames after {} attempts: {}",
        attempts.len(),
        last.2
    );
    eprintln!("30 frames received in {:?}", last.1);

    // Restoring with the token starts again without any chooser.
    let (node2, size2, token2, took2) =
        start_cast(&conn, desk.expected_screencast_version(), Some(&token)).await;
    eprintln!("restored session in {took2:?}: node {node2}, token {token2:?}");
    assert_eq!(size2, (1280, 720));
    assert!(token2.is_some());
    drop(desk);
}
