//! Vulkan loader, instance, device choice and the logical device every other module shares.

use super::kernels::Kernels;
use super::sync::TimelineSemaphore;
use crate::error::{InteropError, Result};
use ash::vk;
use std::ffi::CStr;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which external memory handle type frames arrive as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleType {
    /// Production: compositor dma-bufs (`VK_EXT_external_memory_dma_buf`).
    DmaBuf,
    /// Vulkan-exported opaque fds: the stand-in for dma-bufs on GPU machines that have no
    /// dma-buf import (headless NVIDIA without nvidia-drm).
    OpaqueFd,
}

impl HandleType {
    pub fn vk(self) -> vk::ExternalMemoryHandleTypeFlags {
        match self {
            HandleType::DmaBuf => vk::ExternalMemoryHandleTypeFlags::DMA_BUF_EXT,
            HandleType::OpaqueFd => vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD,
        }
    }
}

/// How to choose the Vulkan device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSelector {
    /// The compositor's DRM device (`dev_t` of its render or primary node, e.g. from the
    /// portal/PipeWire or `stat()`), or `None` to take the best device available.
    pub drm_dev: Option<u64>,
    pub handle_type: HandleType,
}

/// What we know about one physical device (for choice, errors and `probe`).
#[derive(Debug, Clone)]
pub struct PhysicalDeviceInfo {
    pub name: String,
    pub device_type: vk::PhysicalDeviceType,
    pub vendor_id: u32,
    pub device_id: u32,
    pub api_version: u32,
    pub driver: String,
    pub device_uuid: [u8; 16],
    pub driver_uuid: [u8; 16],
    /// `(major, minor)` of the primary and render nodes (VK_EXT_physical_device_drm).
    pub drm_primary: Option<(u32, u32)>,
    pub drm_render: Option<(u32, u32)>,
    pub has_physical_device_drm: bool,
    pub has_external_memory_fd: bool,
    pub has_dma_buf: bool,
    pub has_drm_format_modifier: bool,
    pub has_queue_family_foreign: bool,
    pub has_external_semaphore_fd: bool,
    pub timestamp_period_ns: f32,
}

impl PhysicalDeviceInfo {
    /// Why this device cannot serve `handle_type`, if it cannot.
    pub fn unusable_because(&self, handle_type: HandleType) -> Option<&'static str> {
        if self.api_version < vk::API_VERSION_1_2 {
            return Some("Vulkan 1.2 (timeline semaphores)");
        }
        if !self.has_external_memory_fd {
            return Some("VK_KHR_external_memory_fd");
        }
        if handle_type == HandleType::DmaBuf && !self.has_dma_buf {
            return Some("VK_EXT_external_memory_dma_buf");
        }
        None
    }

    fn matches_drm(&self, major: u32, minor: u32) -> bool {
        self.drm_primary == Some((major, minor)) || self.drm_render == Some((major, minor))
    }

    fn describe_drm(&self) -> String {
        if !self.has_physical_device_drm {
            return "no VK_EXT_physical_device_drm".into();
        }
        let node = |n: Option<(u32, u32)>| n.map_or("-".to_string(), |(a, b)| format!("{a}:{b}"));
        format!(
            "primary {} render {}",
            node(self.drm_primary),
            node(self.drm_render)
        )
    }
}

impl fmt::Display for PhysicalDeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:04x}:{:04x}, Vulkan {}.{}.{}, driver {}, {})",
            self.name,
            self.device_type,
            self.vendor_id,
            self.device_id,
            vk::api_version_major(self.api_version),
            vk::api_version_minor(self.api_version),
            vk::api_version_patch(self.api_version),
            self.driver,
            self.describe_drm()
        )
    }
}

pub(crate) fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The loaded library and instance; dropped last.
pub(crate) struct Instance {
    /// Keeps libvulkan loaded for as long as the instance's function pointers are used.
    _entry: ash::Entry,
    pub instance: ash::Instance,
}

impl Instance {
    pub fn new() -> Result<Self> {
        // SAFETY: loading libvulkan runs its initialisers; there is no other way to use Vulkan.
        let entry = unsafe { ash::Entry::load() }.map_err(InteropError::NoVulkanLoader)?;
        let app = vk::ApplicationInfo::default()
            .application_name(c"zerocast")
            .engine_name(c"zerocast-interop")
            // Timeline semaphores, image format lists and external memory are core in 1.2.
            .api_version(vk::API_VERSION_1_2);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: `info` and what it points to live across the call.
        let instance = unsafe { entry.create_instance(&info, None) }
            .map_err(InteropError::vk("vkCreateInstance"))?;
        Ok(Instance {
            _entry: entry,
            instance,
        })
    }

    pub fn devices(&self) -> Result<Vec<(vk::PhysicalDevice, PhysicalDeviceInfo)>> {
        // SAFETY: the instance is alive.
        let pds = unsafe { self.instance.enumerate_physical_devices() }
            .map_err(InteropError::vk("vkEnumeratePhysicalDevices"))?;
        pds.into_iter()
            .map(|pd| Ok((pd, self.describe(pd)?)))
            .collect()
    }

    fn describe(&self, pd: vk::PhysicalDevice) -> Result<PhysicalDeviceInfo> {
        // SAFETY: `pd` came from this instance.
        let exts = unsafe { self.instance.enumerate_device_extension_properties(pd) }
            .map_err(InteropError::vk("vkEnumerateDeviceExtensionProperties"))?;
        let has = |name: &CStr| exts.iter().any(|e| e.extension_name_as_c_str() == Ok(name));
        let has_drm = has(ash::ext::physical_device_drm::NAME);
        // SAFETY: `pd` came from this instance.
        let props = unsafe { self.instance.get_physical_device_properties(pd) };
        let mut id = vk::PhysicalDeviceIDProperties::default();
        let mut drm = vk::PhysicalDeviceDrmPropertiesEXT::default();
        let mut driver = vk::PhysicalDeviceDriverProperties::default();
        {
            let mut p2 = vk::PhysicalDeviceProperties2::default()
                .push_next(&mut id)
                .push_next(&mut driver);
            if has_drm {
                // VUID-VkPhysicalDeviceProperties2-pNext-pNext: only chain structs of supported
                // extensions.
                p2 = p2.push_next(&mut drm);
            }
            // SAFETY: the chain holds only structs of core 1.2 or supported extensions.
            unsafe { self.instance.get_physical_device_properties2(pd, &mut p2) };
        }
        let node = |has: vk::Bool32, maj: i64, min: i64| {
            (has_drm && has != 0).then_some((maj as u32, min as u32))
        };
        Ok(PhysicalDeviceInfo {
            name: props
                .device_name_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default(),
            device_type: props.device_type,
            vendor_id: props.vendor_id,
            device_id: props.device_id,
            api_version: props.api_version,
            driver: driver
                .driver_info_as_c_str()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default(),
            device_uuid: id.device_uuid,
            driver_uuid: id.driver_uuid,
            drm_primary: node(drm.has_primary, drm.primary_major, drm.primary_minor),
            drm_render: node(drm.has_render, drm.render_major, drm.render_minor),
            has_physical_device_drm: has_drm,
            has_external_memory_fd: has(ash::khr::external_memory_fd::NAME),
            has_dma_buf: has(ash::ext::external_memory_dma_buf::NAME),
            has_drm_format_modifier: has(ash::ext::image_drm_format_modifier::NAME),
            has_queue_family_foreign: has(ash::ext::queue_family_foreign::NAME),
            has_external_semaphore_fd: has(ash::khr::external_semaphore_fd::NAME),
            timestamp_period_ns: props.limits.timestamp_period,
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: every child object (the device) is destroyed before (field order of ContextInner).
        unsafe { self.instance.destroy_instance(None) };
    }
}

/// Picks the device: the one on the compositor's DRM node when given, else the best usable
/// (discrete > integrated > virtual > CPU).
pub(crate) fn choose(
    devices: &[(vk::PhysicalDevice, PhysicalDeviceInfo)],
    sel: &DeviceSelector,
) -> Result<usize> {
    if let Some(dev) = sel.drm_dev {
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let Some(i) = devices
            .iter()
            .position(|(_, d)| d.matches_drm(major, minor))
        else {
            let candidates = devices
                .iter()
                .map(|(_, d)| format!("{} [{}]", d.name, d.describe_drm()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(InteropError::DrmDeviceMismatch {
                major,
                minor,
                candidates,
            });
        };
        let d = &devices[i].1;
        if let Some(what) = d.unusable_because(sel.handle_type) {
            return Err(InteropError::MissingFeature {
                device: d.name.clone(),
                what,
            });
        }
        return Ok(i);
    }
    let rank = |t: vk::PhysicalDeviceType| match t {
        vk::PhysicalDeviceType::DISCRETE_GPU => 0,
        vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
        vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
        vk::PhysicalDeviceType::CPU => 3,
        _ => 4,
    };
    let best = devices
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| d.unusable_because(sel.handle_type).is_none())
        .min_by_key(|(_, (_, d))| rank(d.device_type))
        .map(|(i, _)| i);
    best.ok_or_else(|| {
        if devices.is_empty() {
            return InteropError::NoDevice("the Vulkan loader reports no physical devices".into());
        }
        let why = devices
            .iter()
            .map(|(_, d)| {
                format!(
                    "{} lacks {}",
                    d.name,
                    d.unusable_because(sel.handle_type).unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        InteropError::NoDevice(why)
    })
}

/// Everything the crate's objects share; behind an `Arc` so importers, converters and the CUDA
/// bridge can outlive each other in any order.
pub(crate) struct ContextInner {
    // Field order is drop order: the device goes before the instance.
    pub device: ash::Device,
    pub instance: Instance,
    pub physical: vk::PhysicalDevice,
    pub info: PhysicalDeviceInfo,
    pub handle_type: HandleType,
    pub queue_family: u32,
    /// vkQueueSubmit needs external synchronisation of the queue; the lock also keeps timeline
    /// values in submission order.
    pub queue: Mutex<QueueState>,
    /// Signalled with a new value by every frame submission: "frame N is done" for the CPU, for
    /// CUDA (exported once) and for the importer's buffer release.
    pub timeline: TimelineSemaphore,
    pub kernels: Kernels,
    pub memory: vk::PhysicalDeviceMemoryProperties,
    pub limits: vk::PhysicalDeviceLimits,
    pub mem_fd: ash::khr::external_memory_fd::Device,
    pub sem_fd: Option<ash::khr::external_semaphore_fd::Device>,
    pub drm_modifier: Option<ash::ext::image_drm_format_modifier::Device>,
    pub timestamps: bool,
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        // SAFETY: every object created from the device holds an Arc<ContextInner>, so all are gone;
        // the idle wait retires pending work on the kernels and the timeline.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.kernels.destroy(&self.device);
            self.timeline.destroy(&self.device);
            self.device.destroy_device(None);
        }
    }
}

/// The Vulkan side of the bridge: one logical device with one compute queue.
///
/// Cheap to clone (an `Arc`); `Send + Sync`. Queue submissions are serialised internally.
#[derive(Clone)]
pub struct VulkanContext {
    pub(crate) shared: Arc<ContextInner>,
}

impl fmt::Debug for VulkanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VulkanContext")
            .field("device", &self.shared.info.name)
            .finish()
    }
}

impl VulkanContext {
    /// Loads Vulkan, picks the device per `sel` and creates the logical device.
    pub fn new(sel: DeviceSelector) -> Result<Self> {
        let instance = Instance::new()?;
        let devices = instance.devices()?;
        let i = choose(&devices, &sel)?;
        let (physical, info) = devices[i].clone();
        Self::with_device(instance, physical, info, sel.handle_type)
    }

    fn with_device(
        instance: Instance,
        physical: vk::PhysicalDevice,
        info: PhysicalDeviceInfo,
        handle_type: HandleType,
    ) -> Result<Self> {
        let inst = &instance.instance;
        // SAFETY: `physical` belongs to `inst`.
        let families = unsafe { inst.get_physical_device_queue_family_properties(physical) };
        let queue_family = families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or_else(|| InteropError::MissingFeature {
                device: info.name.clone(),
                what: "a compute queue",
            })? as u32;
        let timestamps = families[queue_family as usize].timestamp_valid_bits > 0;
        let mut exts = vec![ash::khr::external_memory_fd::NAME.as_ptr()];
        if info.has_dma_buf {
            exts.push(ash::ext::external_memory_dma_buf::NAME.as_ptr());
        }
        if info.has_drm_format_modifier {
            exts.push(ash::ext::image_drm_format_modifier::NAME.as_ptr());
        }
        if info.has_queue_family_foreign {
            exts.push(ash::ext::queue_family_foreign::NAME.as_ptr());
        }
        if info.has_external_semaphore_fd {
            exts.push(ash::khr::external_semaphore_fd::NAME.as_ptr());
        }
        let prio = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&prio)];
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default().timeline_semaphore(true);
        let create = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_extension_names(&exts)
            .push_next(&mut v12);
        // SAFETY: the extension names are static C strings; every enabled extension was listed
        // by the device (VUID-vkCreateDevice-ppEnabledExtensionNames-01387).
        let device = unsafe { inst.create_device(physical, &create, None) }
            .map_err(InteropError::vk("vkCreateDevice"))?;
        // SAFETY: family and index 0 were requested above.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        // SAFETY: `physical` belongs to `inst`.
        let memory = unsafe { inst.get_physical_device_memory_properties(physical) };
        // SAFETY: as above.
        let limits = unsafe { inst.get_physical_device_properties(physical) }.limits;
        let mem_fd = ash::khr::external_memory_fd::Device::new(inst, &device);
        let sem_fd = info
            .has_external_semaphore_fd
            .then(|| ash::khr::external_semaphore_fd::Device::new(inst, &device));
        let drm_modifier = info
            .has_drm_format_modifier
            .then(|| ash::ext::image_drm_format_modifier::Device::new(inst, &device));
        let kernels = match Kernels::new(&device) {
            Ok(k) => k,
            Err(e) => {
                // SAFETY: nothing was created from the device yet.
                unsafe { device.destroy_device(None) };
                return Err(e);
            }
        };
        let timeline = match TimelineSemaphore::new(
            inst,
            physical,
            &device,
            info.has_external_semaphore_fd,
            true,
        ) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: the kernels are unused.
                unsafe {
                    kernels.destroy(&device);
                    device.destroy_device(None);
                }
                return Err(e);
            }
        };
        tracing::info!(device = %info, ?handle_type, "interop Vulkan device");
        Ok(VulkanContext {
            shared: Arc::new(ContextInner {
                device,
                instance,
                physical,
                info,
                handle_type,
                queue_family,
                queue: Mutex::new(QueueState {
                    queue,
                    last_value: 0,
                }),
                timeline,
                kernels,
                memory,
                limits,
                mem_fd,
                sem_fd,
                drm_modifier,
                timestamps,
            }),
        })
    }

    pub fn device_info(&self) -> &PhysicalDeviceInfo {
        &self.shared.info
    }

    pub fn handle_type(&self) -> HandleType {
        self.shared.handle_type
    }

    /// Whether timeline semaphores can be imported from fds (explicit sync with a compositor).
    pub fn can_import_semaphores(&self) -> bool {
        self.shared.sem_fd.is_some()
    }

    /// Whether a Vulkan semaphore can be shared with CUDA (else frames need a CPU wait).
    pub fn can_export_semaphores(&self) -> bool {
        self.shared.sem_fd.is_some()
    }

    /// Raw handles for code that needs plain ash (tests, the GPU check binary).
    pub fn raw(&self) -> (&ash::Instance, vk::PhysicalDevice, &ash::Device) {
        (
            &self.shared.instance.instance,
            self.shared.physical,
            &self.shared.device,
        )
    }

    pub fn queue_family(&self) -> u32 {
        self.shared.queue_family
    }

    /// The newest frame value the GPU has finished (see [`crate::ConvertedFrame::value`]).
    /// Buffers used by frames up to it may be given back to the compositor.
    pub fn completed_value(&self) -> Result<u64> {
        self.shared.timeline.value(&self.shared.device)
    }

    /// Blocks until frame `value` is done; `Ok(false)` on timeout. The CPU fallback where CUDA
    /// cannot wait on the GPU.
    pub fn wait_for(&self, value: u64, timeout: Duration) -> Result<bool> {
        self.shared
            .timeline
            .wait(&self.shared.device, value, timeout)
    }
}

pub(crate) struct QueueState {
    pub queue: vk::Queue,
    /// The last timeline value handed to a submission.
    pub last_value: u64,
}

impl ContextInner {
    /// A memory type in `bits` with all of `required`, preferring one that also has `preferred`.
    pub fn memory_type(
        &self,
        bits: u32,
        required: vk::MemoryPropertyFlags,
        preferred: vk::MemoryPropertyFlags,
    ) -> Option<u32> {
        let types = &self.memory.memory_types[..self.memory.memory_type_count as usize];
        let ok = |i: usize, f: vk::MemoryPropertyFlags| {
            bits & (1 << i) != 0 && types[i].property_flags.contains(f)
        };
        (0..types.len())
            .find(|&i| ok(i, required | preferred))
            .or_else(|| (0..types.len()).find(|&i| ok(i, required)))
            .map(|i| i as u32)
    }

    pub fn memory_flags(&self, index: u32) -> vk::MemoryPropertyFlags {
        self.memory.memory_types[index as usize].property_flags
    }

    /// Submits one command buffer that signals the context timeline with a new value, after
    /// optionally waiting (on the GPU) for `wait`. Returns the value. Allocation-free.
    // Only the `testing` stand-ins (never shipped) use this; the shipped build must stay warning-free.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the testing feature's checks only")
    )]
    pub fn submit_frame(
        &self,
        cmd: vk::CommandBuffer,
        wait: Option<(vk::Semaphore, u64)>,
    ) -> Result<u64> {
        self.submit_frame_sync(cmd, wait, None, None)
    }

    /// [`ContextInner::submit_frame`] that also waits for `acquire` (the compositor's rendering,
    /// explicit sync) before the compute stage and signals `release` (the compositor may reuse
    /// the buffer) with the frame's own value.
    pub fn submit_frame_sync(
        &self,
        cmd: vk::CommandBuffer,
        wait: Option<(vk::Semaphore, u64)>,
        acquire: Option<(vk::Semaphore, u64)>,
        release: Option<(vk::Semaphore, u64)>,
    ) -> Result<u64> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let value = q.last_value + 1;
        let cmds = [cmd];
        // Fixed arrays, used up to their counts: the per-frame submit does not allocate.
        let mut wait_sems = [vk::Semaphore::null(); 2];
        let mut wait_values = [0u64; 2];
        let mut n_wait = 0;
        for (s, v) in [wait, acquire].into_iter().flatten() {
            wait_sems[n_wait] = s;
            wait_values[n_wait] = v;
            n_wait += 1;
        }
        let mut signal_sems = [self.timeline.sem, vk::Semaphore::null()];
        let mut signal_values = [value, 0];
        let mut n_signal = 1;
        if let Some((s, v)) = release {
            signal_sems[1] = s;
            signal_values[1] = v;
            n_signal = 2;
        }
        let stages = [vk::PipelineStageFlags::COMPUTE_SHADER; 2];
        let mut tl = vk::TimelineSemaphoreSubmitInfo::default()
            .wait_semaphore_values(&wait_values[..n_wait])
            .signal_semaphore_values(&signal_values[..n_signal]);
        let submit = vk::SubmitInfo::default()
            .command_buffers(&cmds)
            .wait_semaphores(&wait_sems[..n_wait])
            .wait_dst_stage_mask(&stages[..n_wait])
            .signal_semaphores(&signal_sems[..n_signal])
            // VUID-VkSubmitInfo-pWaitSemaphores-03243 / pSignalSemaphores-03244: timeline
            // values for every timeline semaphore, in the same order.
            .push_next(&mut tl);
        // SAFETY: the queue is externally synchronised by the lock (VUID-vkQueueSubmit-queue-
        // parameter); callers keep the submitted objects alive until the value completes.
        unsafe {
            self.device
                .queue_submit(q.queue, &[submit], vk::Fence::null())
        }
        .map_err(InteropError::vk("vkQueueSubmit"))?;
        q.last_value = value;
        Ok(value)
    }

    /// Submits `cmd` and blocks until it is done (setup and test helpers only).
    // Only the `testing` stand-ins (never shipped) use this; the shipped build must stay warning-free.
    #[cfg_attr(
        not(feature = "testing"),
        allow(dead_code, reason = "used by the testing feature's checks only")
    )]
    pub fn submit_and_wait(&self, cmd: vk::CommandBuffer) -> Result<()> {
        let v = self.submit_frame(cmd, None)?;
        self.timeline
            .wait(&self.device, v, Duration::from_secs(10))?;
        Ok(())
    }

    /// The source queue family for acquiring dma-bufs written by another device or process.
    pub fn foreign_family(&self) -> u32 {
        if self.info.has_queue_family_foreign {
            vk::QUEUE_FAMILY_FOREIGN_EXT
        } else {
            vk::QUEUE_FAMILY_EXTERNAL
        }
    }
}
