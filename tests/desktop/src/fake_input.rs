//! Key presses through KWin's `org_kde_kwin_fake_input` (the protocol KDE Connect and
//! virtual keyboards use): the events enter KWin's input pipeline like a keyboard's, so global
//! shortcuts see them. Binding it needs `KWIN_WAYLAND_NO_PERMISSION_CHECKS=1` (set by the KDE
//! flavour); `authenticate` is still required before KWin accepts events.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use smithay_client_toolkit::reexports::client::{
    globals::{registry_queue_init, GlobalListContents},
    protocol::wl_registry,
    Connection, Dispatch, QueueHandle,
};
use wayland_protocols_plasma::fake_input::client::org_kde_kwin_fake_input::OrgKdeKwinFakeInput;

struct State;

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<OrgKdeKwinFakeInput, ()> for State {
    fn event(
        _: &mut Self,
        _: &OrgKdeKwinFakeInput,
        _: <OrgKdeKwinFakeInput as smithay_client_toolkit::reexports::client::Proxy>::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

/// wl_keyboard key states.
const RELEASED: u32 = 0;
const PRESSED: u32 = 1;

/// Connects to the compositor at `socket`, presses `keys` (evdev codes) together and releases
/// them in reverse. Returns the press time (CLOCK_REALTIME, µs).
pub(crate) fn press_keys(socket: &Path, keys: &[u32]) -> Result<i64> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let conn = Connection::from_socket(stream)?;
    let (globals, mut queue) = registry_queue_init::<State>(&conn)?;
    let qh = queue.handle();
    let fake: OrgKdeKwinFakeInput = globals
        .bind(&qh, 4..=4, ())
        .map_err(|e| anyhow!("no org_kde_kwin_fake_input version 4 (keyboard_key) global: {e}"))?;
    let mut state = State;
    fake.authenticate("zerocast-testdesk".into(), "press a global shortcut".into());
    queue.roundtrip(&mut state)?;
    let t = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64;
    // Small gaps, as a person's fingers: KWin's xkb state sees the modifiers before the key.
    for &k in keys {
        fake.keyboard_key(k, PRESSED);
        conn.flush()?;
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(100));
    for &k in keys.iter().rev() {
        fake.keyboard_key(k, RELEASED);
        conn.flush()?;
        std::thread::sleep(Duration::from_millis(30));
    }
    queue.roundtrip(&mut state)?;
    Ok(t)
}
