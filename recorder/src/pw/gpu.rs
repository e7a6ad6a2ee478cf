//! The DMA-BUF capture path on the loop thread: Vulkan import (cached per `pw_buffer`), NV12
//! conversion on the GPU, and read-back into host memory for the CPU encoder.

use pipewire::spa::param::video::VideoFormat;
use zerocast_interop::{
    BufferId, ConvertedFrame, Converter, ConverterConfig, DeviceSelector, DmabufDesc,
    DmabufImporter, FrameReleaser, HandleType, InteropError, ModifierSet, OutputMode,
    VulkanContext,
};

use super::params;

/// Set to disable the DMA-BUF path (offer SHM only), e.g. to compare the two paths.
pub(crate) const DISABLE_ENV: &str = "ZEROCAST_NO_DMABUF";
/// Set to use the DMA-BUF path even on a software Vulkan device (lavapipe): the tests do, to
/// exercise the path without a GPU. In production a CPU "GPU" converts slower than the SHM path
/// and loading it costs ~80 MB of memory and ~200 ms at start.
pub(crate) const CPU_DEVICE_ENV: &str = "ZEROCAST_DMABUF_ON_CPU";

/// Why the DMA-BUF path is not even tried, if it is not.
pub(crate) fn skip_reason() -> Option<String> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return Some(format!("disabled by {DISABLE_ENV}"));
    }
    if std::env::var_os(CPU_DEVICE_ENV).is_some() {
        return None;
    }
    // A dma-buf can only come from (and be imported into) a GPU with a DRM render node.
    let has_render_node = std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    (!has_render_node).then(|| "no GPU render node in /dev/dri".to_string())
}

pub(crate) struct Gpu {
    // Drop order: the converter and importer free Vulkan objects of the context.
    converter: Option<(Converter, FrameReleaser)>,
    importer: DmabufImporter,
    modifiers: ModifierSet,
    ctx: VulkanContext,
}

impl Gpu {
    /// Opens the Vulkan device and asks which modifiers it imports. Any error means "no
    /// DMA-BUF path here": the caller offers SHM only.
    pub fn new() -> Result<Gpu, InteropError> {
        let t0 = std::time::Instant::now();
        // PipeWire does not say which GPU made the buffers; the compositor's Wayland dma-buf
        // feedback does. Without it (no Wayland session) interop picks the best device, and a
        // foreign dma-buf that fails to import makes us renegotiate without that modifier.
        let drm_dev = crate::wayland::compositor_drm_device();
        tracing::info!(
            drm_dev = drm_dev.map(|d| format!("{}:{}", libc::major(d), libc::minor(d))),
            "compositor's DRM device (Wayland dma-buf feedback)"
        );
        let ctx = VulkanContext::new(DeviceSelector {
            drm_dev,
            handle_type: HandleType::DmaBuf,
        })?;
        if ctx.device_info().device_type == zerocast_interop::ash::vk::PhysicalDeviceType::CPU
            && std::env::var_os(CPU_DEVICE_ENV).is_none()
        {
            return Err(InteropError::NoDevice(format!(
                "{} is a software renderer; SHM is cheaper (set {CPU_DEVICE_ENV}=1 to use it)",
                ctx.device_info().name
            )));
        }
        let modifiers = ModifierSet::query(&ctx)?;
        let importer = DmabufImporter::new(&ctx)?;
        tracing::info!(
            device = %ctx.device_info().name,
            setup_ms = t0.elapsed().as_millis() as u64,
            "importable modifiers:\n{modifiers}"
        );
        Ok(Gpu {
            converter: None,
            importer,
            modifiers,
            ctx,
        })
    }

    /// The modifiers to offer per SHM format (formats without a DRM fourcc get none).
    pub fn offer(&self) -> Vec<(VideoFormat, Vec<u64>)> {
        params::SHM_FORMATS
            .iter()
            .filter_map(|&f| {
                let fourcc = params::drm_fourcc(f)?;
                let mods: Vec<u64> = self.modifiers.modifiers(fourcc).map(|m| m.0).collect();
                Some((f, mods))
            })
            .collect()
    }

    /// A new DMA-BUF format: drop imports of the old one, (re)build the converter for `size`.
    pub fn configure(&mut self, width: u32, height: u32) -> Result<(), InteropError> {
        self.importer.clear()?;
        if self
            .converter
            .as_ref()
            .is_some_and(|(c, _)| (c.config().width, c.config().height) == (width, height))
        {
            return Ok(());
        }
        self.converter = None;
        let conv = Converter::new(
            &self.ctx,
            ConverterConfig {
                host_readback: true,
                ..ConverterConfig::new(OutputMode::Nv12, width, height)
            },
        )?;
        let releaser = conv.releaser();
        self.converter = Some((conv, releaser));
        Ok(())
    }

    /// PipeWire removed the buffer (or the format changed).
    pub fn forget(&mut self, id: BufferId) {
        if let Err(e) = self.importer.forget(id) {
            tracing::warn!(error = %e, "releasing an imported buffer failed");
        }
    }

    /// Imports (once per buffer) and converts one frame; returns the NV12 read-back, complete:
    /// when this returns the GPU no longer reads the compositor's buffer, so it may be queued
    /// back at once. `fill` gets the frame's bytes and layout before the slot is reused.
    pub fn convert(
        &mut self,
        id: BufferId,
        desc: &DmabufDesc<'_>,
        fill: impl FnOnce(&[u8], &zerocast_interop::FrameLayout),
    ) -> Result<(), InteropError> {
        let Some((conv, releaser)) = self.converter.as_mut() else {
            return Err(InteropError::InvalidDmabuf(
                "no converter configured".into(),
            ));
        };
        let imported = self.importer.import(id, desc)?;
        let frame: ConvertedFrame = conv.convert(imported)?;
        // host_frame waits for the frame's timeline value: the CPU path needs the bytes now, and
        // that same wait is what makes it safe to give the pw_buffer back afterwards.
        let result = conv
            .host_frame(&frame)
            .map(|bytes| fill(bytes, &frame.layout));
        releaser.release(&frame);
        result
    }
}
