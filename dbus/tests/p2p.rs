//! The service over a real zbus peer-to-peer connection: errors arrive as named D-Bus errors,
//! properties read back, and the objects follow their lifecycle. No bus daemon needed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use zbus::zvariant::{OwnedValue, Value};
use zbus::{connection::Builder, Guid};
use zerocast_dbus::ctl::{RecorderProxy, RecordingProxy};
use zerocast_dbus::fake::FakeBackend;
use zerocast_dbus::service::{RecorderService, ServiceConfig, Shared};
use zerocast_dbus::MANAGER_PATH;

async fn pair(fake: FakeBackend, config: ServiceConfig) -> (zbus::Connection, zbus::Connection) {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let shared = Shared::new(Arc::new(fake), config);
    let guid = Guid::generate();
    let server = Builder::unix_stream(a)
        .server(guid)
        .unwrap()
        .p2p()
        .serve_at(MANAGER_PATH, RecorderService::new(shared))
        .unwrap()
        .build();
    let client = Builder::unix_stream(b).p2p().build();
    let (s, c) = tokio::join!(server, client);
    (s.unwrap(), c.unwrap())
}

fn method_error(e: zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => (name.to_string(), msg.unwrap_or_default()),
        e => panic!("not a method error: {e}"),
    }
}

async fn proxy(c: &zbus::Connection) -> RecorderProxy<'static> {
    RecorderProxy::new(c).await.unwrap()
}

/// The recording object at `path`, its properties read live (no cache).
async fn recording(
    c: &zbus::Connection,
    path: zbus::zvariant::OwnedObjectPath,
) -> RecordingProxy<'static> {
    RecordingProxy::builder(c)
        .path(path)
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_option_is_a_named_error() {
    let (_s, c) = pair(FakeBackend::default(), ServiceConfig::default()).await;
    let m = proxy(&c).await;
    let e = m
        .start(HashMap::from([("framerate", Value::from("60"))]))
        .await
        .unwrap_err();
    let (name, msg) = method_error(e);
    assert_eq!(name, "org.zerocast.Error.InvalidOption");
    assert_eq!(msg, "'framerate' must be u (uint32), got s (string)");
    let e = m
        .start(HashMap::from([("fps", Value::from(60u32))]))
        .await
        .unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.InvalidOption");
    let e = m
        .start(HashMap::from([("path", Value::from("/no/such/dir/a.mkv"))]))
        .await
        .unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.OutputNotWritable");
    // Still serving.
    assert_eq!(m.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn capabilities_property() {
    let (_s, c) = pair(FakeBackend::default(), ServiceConfig::default()).await;
    let caps: HashMap<String, OwnedValue> = proxy(&c).await.capabilities().await.unwrap();
    for k in [
        "encoders",
        "zero-copy",
        "version",
        "cursor-modes",
        "source-types",
    ] {
        assert!(caps.contains_key(k), "missing {k}: {caps:?}");
    }
    let enc: Vec<String> = caps["encoders"].try_clone().unwrap().try_into().unwrap();
    assert_eq!(enc, vec!["fake".to_string()]);
}

#[tokio::test]
async fn lifecycle_stop_pause_errors_and_removal() {
    let fake = FakeBackend::default();
    let config = ServiceConfig {
        linger: Duration::from_millis(300),
        keep_ended: 5,
        progress_interval: Duration::from_millis(100),
    };
    let (_s, c) = pair(fake.clone(), config).await;
    let m = proxy(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.mkv");
    let path = m
        .start(HashMap::from([(
            "path",
            Value::from(out.to_str().unwrap()),
        )]))
        .await
        .unwrap();
    let rec = recording(&c, path.clone()).await;
    assert_eq!(rec.state().await.unwrap(), "recording");
    assert_eq!(m.recordings().await.unwrap(), vec![path.clone()]);

    // Same output twice while running → refused.
    let e = m
        .start(HashMap::from([(
            "path",
            Value::from(out.to_str().unwrap()),
        )]))
        .await
        .unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.OutputNotWritable");

    let e = rec.resume().await.unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.NotPaused");
    rec.pause().await.unwrap();
    assert_eq!(rec.state().await.unwrap(), "paused");
    let e = rec.pause().await.unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.NotRecording");
    rec.resume().await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(rec.duration().await.unwrap() > 0.0);

    assert_eq!(rec.stop().await.unwrap(), out.to_str().unwrap());
    assert!(out.exists(), "finalized before Stop returned");
    assert_eq!(rec.state().await.unwrap(), "finished");
    let e = rec.stop().await.unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.NotRecording");

    // Removed after `linger`; calls then fail with UnknownObject.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(m.recordings().await.unwrap().is_empty());
    let e = rec.stop().await.unwrap_err();
    assert_eq!(
        method_error(e).0,
        "org.freedesktop.DBus.Error.UnknownObject"
    );
}

/// A source warning of the backend (the portal restored another source than the one chosen)
/// is the recording's `Warnings` property, by name; a recording without one has none.
#[tokio::test]
async fn warnings_property_names_the_warning() {
    let fake = FakeBackend::default();
    let (_s, c) = pair(fake.clone(), ServiceConfig::default()).await;
    let m = proxy(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let message = "the restored screen-cast source is monitor at 200,0 1280x720, but …; \
                   record with --no-restore";
    fake.warn_next_start("restored-source-differs", message);
    let mut objects = Vec::new();
    for name in ["w.mkv", "plain.mkv"] {
        let path = m
            .start(HashMap::from([(
                "path",
                Value::from(dir.path().join(name).to_str().unwrap()),
            )]))
            .await
            .unwrap();
        let rec = recording(&c, path).await;
        objects.push(rec);
    }
    assert_eq!(
        objects[0].warnings().await.unwrap(),
        HashMap::from([("restored-source-differs".to_string(), message.to_string())])
    );
    assert!(objects[1].warnings().await.unwrap().is_empty());
}

#[tokio::test]
async fn portal_cancelled_and_stream_lost() {
    let fake = FakeBackend::default();
    let (_s, c) = pair(fake.clone(), ServiceConfig::default()).await;
    let m = proxy(&c).await;
    let dir = tempfile::tempdir().unwrap();
    fake.fail_next_start(zerocast_dbus::Error::PortalCancelled(
        "the screen-cast request was cancelled".into(),
    ));
    let e = m
        .start(HashMap::from([(
            "path",
            Value::from(dir.path().join("x.mkv").to_str().unwrap()),
        )]))
        .await
        .unwrap_err();
    assert_eq!(method_error(e).0, "org.zerocast.Error.PortalCancelled");

    let path = m
        .start(HashMap::from([(
            "path",
            Value::from(dir.path().join("y.mkv").to_str().unwrap()),
        )]))
        .await
        .unwrap();
    let rec = recording(&c, path).await;
    use futures_util::StreamExt;
    let mut failed = rec.receive_failed().await.unwrap();
    fake.started().last().unwrap().lose_stream();
    let sig = tokio::time::timeout(Duration::from_secs(5), failed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sig.args().unwrap().error_name(),
        "org.zerocast.Error.StreamLost"
    );
    assert_eq!(rec.state().await.unwrap(), "failed");
    assert!(dir.path().join("y.mkv").exists(), "the file so far is kept");
}
