//! The compositor's main DRM device, read from the Wayland dma-buf feedback
//! (`zwp_linux_dmabuf_v1` v4 default feedback), so the DMA-BUF path imports on the GPU the
//! compositor renders with — on a multi-GPU machine any other device would fail to import its
//! buffers or import them through a slow cross-device copy.

use smithay_client_toolkit::dmabuf::{DmabufFeedback, DmabufHandler, DmabufState};
use smithay_client_toolkit::reexports::client::globals::registry_queue_init;
use smithay_client_toolkit::reexports::client::protocol::wl_buffer;
use smithay_client_toolkit::reexports::client::{Connection, QueueHandle};
use smithay_client_toolkit::reexports::protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1,
};
use smithay_client_toolkit::registry::{ProvidesRegistryState, RegistryState};
use smithay_client_toolkit::{delegate_dispatch2, delegate_registry, registry_handlers};

struct Feedback {
    registry: RegistryState,
    dmabuf: DmabufState,
    device: Option<u64>,
}

/// `dev_t` of the compositor's main device, or `None` when there is no Wayland session, the
/// compositor has no linux-dmabuf v4 (e.g. a software-rendered compositor), or it does not
/// answer. Blocking (a few round trips): call it from the PipeWire thread, not an async task.
pub(crate) fn compositor_drm_device() -> Option<u64> {
    std::env::var_os("WAYLAND_DISPLAY")?;
    let conn = Connection::connect_to_env().ok()?;
    let (globals, mut queue) = registry_queue_init::<Feedback>(&conn).ok()?;
    let qh = queue.handle();
    let mut state = Feedback {
        registry: RegistryState::new(&globals),
        dmabuf: DmabufState::new(&globals, &qh),
        device: None,
    };
    let feedback = state.dmabuf.get_default_feedback(&qh).ok()?;
    // The feedback arrives in one burst ending with `done`; two round trips are plenty.
    for _ in 0..3 {
        if queue.roundtrip(&mut state).is_err() || state.device.is_some() {
            break;
        }
    }
    feedback.destroy();
    state.device
}

impl DmabufHandler for Feedback {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf
    }

    fn dmabuf_feedback(
        &mut self,
        _conn: &Connection,
        _qh: &QueueHandle<Self>,
        _proxy: &zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        feedback: DmabufFeedback,
    ) {
        self.device = Some(feedback.main_device());
    }

    fn created(
        &mut self,
        _conn: &Connection,
        _qh: &QueueHandle<Self>,
        _params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        _buffer: wl_buffer::WlBuffer,
    ) {
    }

    fn failed(
        &mut self,
        _conn: &Connection,
        _qh: &QueueHandle<Self>,
        _params: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
    ) {
    }

    fn released(
        &mut self,
        _conn: &Connection,
        _qh: &QueueHandle<Self>,
        _buffer: &wl_buffer::WlBuffer,
    ) {
    }
}

impl ProvidesRegistryState for Feedback {
    fn registry(&mut self) -> &mut RegistryState {
        &mut self.registry
    }
    registry_handlers!();
}

delegate_registry!(Feedback);
delegate_dispatch2!(Feedback);
