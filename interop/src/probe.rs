//! `zerocast probe`: what the interop path can do on this machine, and why not.

use crate::cuda::{cuda_devices, cuda_driver_version, CudaDeviceInfo};
use crate::error::InteropError;
use crate::format::Fourcc;
use crate::modifiers::ModifierSet;
use crate::vk::context::{
    choose, uuid_string, DeviceSelector, HandleType, Instance, PhysicalDeviceInfo, VulkanContext,
};
use std::fmt;

/// Plain data; `Display` renders the human report.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub handle_type: HandleType,
    /// Every Vulkan device (empty with `vulkan_error` set when Vulkan is unusable).
    pub vulkan_devices: Vec<PhysicalDeviceInfo>,
    pub vulkan_error: Option<String>,
    /// Index into `vulkan_devices` of the device the recorder would use.
    pub chosen: Option<usize>,
    pub modifiers: Option<ModifierSet>,
    pub semaphore_export: bool,
    pub cuda_driver_version: Option<i32>,
    pub cuda_devices: Vec<CudaDeviceInfo>,
    pub cuda_error: Option<String>,
    /// Whether dma-buf → Vulkan → CUDA works; else `zero_copy_why_not` says why.
    pub zero_copy: bool,
    pub zero_copy_why_not: Vec<String>,
    /// Whether the GPU convert works but frames must be read back for a CPU encoder.
    pub gpu_convert_cpu_encode: bool,
}

/// Probes for the production path (dma-buf import).
pub fn probe() -> ProbeReport {
    probe_with(DeviceSelector {
        drm_dev: None,
        handle_type: HandleType::DmaBuf,
    })
}

/// Probes with an explicit selector (e.g. OPAQUE_FD on the GPU test machine).
pub fn probe_with(sel: DeviceSelector) -> ProbeReport {
    let mut r = ProbeReport {
        handle_type: sel.handle_type,
        vulkan_devices: Vec::new(),
        vulkan_error: None,
        chosen: None,
        modifiers: None,
        semaphore_export: false,
        cuda_driver_version: None,
        cuda_devices: Vec::new(),
        cuda_error: None,
        zero_copy: false,
        zero_copy_why_not: Vec::new(),
        gpu_convert_cpu_encode: false,
    };
    match Instance::new().and_then(|i| i.devices()) {
        Ok(devs) => {
            r.chosen = choose(&devs, &sel)
                .map_err(|e| r.zero_copy_why_not.push(e.to_string()))
                .ok();
            r.vulkan_devices = devs.into_iter().map(|(_, d)| d).collect();
        }
        Err(e) => {
            r.vulkan_error = Some(e.to_string());
            r.zero_copy_why_not.push(e.to_string());
        }
    }
    if r.chosen.is_some() {
        match VulkanContext::new(sel).and_then(|ctx| Ok((ModifierSet::query(&ctx)?, ctx))) {
            Ok((m, ctx)) => {
                r.semaphore_export = ctx.can_export_semaphores();
                let ok = [Fourcc::XRGB8888, Fourcc::ARGB8888]
                    .iter()
                    .any(|f| m.modifiers(*f).next().is_some());
                if !ok {
                    r.zero_copy_why_not
                        .push("no importable modifier for XR24/AR24".into());
                }
                r.gpu_convert_cpu_encode = ok;
                r.modifiers = Some(m);
            }
            Err(e) => r
                .zero_copy_why_not
                .push(format!("Vulkan device setup: {e}")),
        }
    }
    match cuda_devices() {
        Ok(d) => {
            r.cuda_devices = d;
            r.cuda_driver_version = cuda_driver_version().ok();
        }
        Err(e) => r.cuda_error = Some(e.to_string()),
    }
    if let Some(e) = &r.cuda_error {
        r.zero_copy_why_not.push(format!("CUDA: {e}"));
    } else if let Some(i) = r.chosen {
        let uuid = r.vulkan_devices[i].device_uuid;
        if !r.cuda_devices.iter().any(|c| c.uuid == uuid) {
            r.zero_copy_why_not.push(
                InteropError::CudaDeviceMismatch {
                    vk_uuid: uuid_string(&uuid),
                    cuda: r
                        .cuda_devices
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .to_string(),
            );
        }
    }
    r.zero_copy = r.zero_copy_why_not.is_empty();
    r
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Vulkan (import as {:?}):", self.handle_type)?;
        if let Some(e) = &self.vulkan_error {
            writeln!(f, "  unavailable: {e}")?;
        }
        for (i, d) in self.vulkan_devices.iter().enumerate() {
            let mark = if Some(i) == self.chosen { "*" } else { " " };
            writeln!(f, " {mark}[{i}] {d}")?;
            writeln!(f, "      uuid {}", uuid_string(&d.device_uuid))?;
            let yn = |b: bool| if b { "yes" } else { "no" };
            writeln!(
                f,
                "      dma-buf import {}, DRM modifiers {}, queue-family-foreign {}, semaphore fd {}",
                yn(d.has_dma_buf),
                yn(d.has_drm_format_modifier),
                yn(d.has_queue_family_foreign),
                yn(d.has_external_semaphore_fd)
            )?;
        }
        if let Some(m) = &self.modifiers {
            writeln!(f, "Importable modifiers:")?;
            write!(f, "{m}")?;
        }
        writeln!(f, "CUDA:")?;
        match &self.cuda_error {
            Some(e) => writeln!(f, "  unavailable: {e}")?,
            None => {
                if let Some(v) = self.cuda_driver_version {
                    writeln!(f, "  driver API {}.{}", v / 1000, (v % 1000) / 10)?;
                }
                for c in &self.cuda_devices {
                    writeln!(
                        f,
                        "  [{}] {} uuid {}",
                        c.ordinal,
                        c.name,
                        uuid_string(&c.uuid)
                    )?;
                }
            }
        }
        if self.chosen.is_some() {
            // The same extension imports the compositor's timelines and exports ours to CUDA.
            writeln!(
                f,
                "Explicit sync (SyncTimeline): {}",
                if self.semaphore_export {
                    "offered with DMA-BUF buffers"
                } else {
                    "not offered (the device has no VK_KHR_external_semaphore_fd)"
                }
            )?;
        }
        if self.zero_copy {
            writeln!(
                f,
                "Zero-copy path: available (dmabuf-vulkan-cuda, {} sync)",
                if self.semaphore_export {
                    "GPU semaphore"
                } else {
                    "CPU fence"
                }
            )
        } else {
            writeln!(f, "Zero-copy path: unavailable")?;
            for w in &self.zero_copy_why_not {
                writeln!(f, "  - {w}")?;
            }
            if self.gpu_convert_cpu_encode {
                writeln!(
                    f,
                    "  GPU import + convert still works (read back for a software encoder)"
                )?;
            }
            Ok(())
        }
    }
}
