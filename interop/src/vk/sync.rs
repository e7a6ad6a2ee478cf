//! Timeline semaphores: how Vulkan, CUDA and the CPU agree on when a frame is done.

use crate::error::{InteropError, Result};
use ash::vk;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

/// A timeline semaphore. Plain handle: its owner destroys it with [`TimelineSemaphore::destroy`] after
/// the GPU work using it has completed.
pub(crate) struct TimelineSemaphore {
    pub sem: vk::Semaphore,
    pub exportable: bool,
}

fn timeline_exportable(
    instance: &ash::Instance,
    physical: vk::PhysicalDevice,
    has_sem_fd: bool,
) -> bool {
    if !has_sem_fd {
        return false;
    }
    let mut ty = vk::SemaphoreTypeCreateInfo::default().semaphore_type(vk::SemaphoreType::TIMELINE);
    let info = vk::PhysicalDeviceExternalSemaphoreInfo::default()
        .handle_type(vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD)
        .push_next(&mut ty);
    let mut props = vk::ExternalSemaphoreProperties::default();
    // SAFETY: plain query on a physical device of `instance`.
    unsafe {
        instance.get_physical_device_external_semaphore_properties(physical, &info, &mut props)
    };
    props
        .external_semaphore_features
        .contains(vk::ExternalSemaphoreFeatureFlags::EXPORTABLE)
}

impl TimelineSemaphore {
    /// A timeline semaphore at 0, exportable as OPAQUE_FD when `want_export` and supported.
    pub fn new(
        instance: &ash::Instance,
        physical: vk::PhysicalDevice,
        device: &ash::Device,
        has_sem_fd: bool,
        want_export: bool,
    ) -> Result<Self> {
        let exportable = want_export && timeline_exportable(instance, physical, has_sem_fd);
        let mut ty = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let mut export = vk::ExportSemaphoreCreateInfo::default()
            .handle_types(vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD);
        let mut info = vk::SemaphoreCreateInfo::default().push_next(&mut ty);
        if exportable {
            info = info.push_next(&mut export);
        }
        // SAFETY: valid create info with the timelineSemaphore feature enabled.
        let sem = unsafe { device.create_semaphore(&info, None) }
            .map_err(InteropError::vk("vkCreateSemaphore"))?;
        Ok(TimelineSemaphore { sem, exportable })
    }

    /// # Safety
    /// No pending GPU work may use the semaphore.
    pub unsafe fn destroy(&self, device: &ash::Device) {
        // SAFETY: per the caller's contract.
        unsafe { device.destroy_semaphore(self.sem, None) };
    }

    /// The value the GPU has reached.
    pub fn value(&self, device: &ash::Device) -> Result<u64> {
        // SAFETY: timeline semaphore of this device.
        unsafe { device.get_semaphore_counter_value(self.sem) }
            .map_err(InteropError::vk("vkGetSemaphoreCounterValue"))
    }

    /// Blocks the calling thread until the semaphore reaches `value` — the fallback where
    /// neither CUDA nor another queue can wait on the GPU. `Ok(false)` on timeout.
    pub fn wait(&self, device: &ash::Device, value: u64, timeout: Duration) -> Result<bool> {
        let sems = [self.sem];
        let values = [value];
        let info = vk::SemaphoreWaitInfo::default()
            .semaphores(&sems)
            .values(&values);
        let ns = timeout.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: timeline semaphore of this device.
        match unsafe { device.wait_semaphores(&info, ns) } {
            Ok(()) => Ok(true),
            Err(vk::Result::TIMEOUT) => Ok(false),
            Err(e) => Err(InteropError::vk("vkWaitSemaphores")(e)),
        }
    }

    /// A new OPAQUE_FD for CUDA (`CU_EXTERNAL_SEMAPHORE_HANDLE_TYPE_TIMELINE_SEMAPHORE_FD`),
    /// or `None` where the semaphore is not exportable.
    /// `sem_fd`: the device's VK_KHR_external_semaphore_fd functions, where it has them.
    pub fn export_fd(
        &self,
        sem_fd: Option<&ash::khr::external_semaphore_fd::Device>,
    ) -> Result<Option<OwnedFd>> {
        let (Some(sem_fd), true) = (sem_fd, self.exportable) else {
            return Ok(None);
        };
        let info = vk::SemaphoreGetFdInfoKHR::default()
            .semaphore(self.sem)
            // VUID-VkSemaphoreGetFdInfoKHR-handleType-01132: created exportable with this type.
            .handle_type(vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD);
        // SAFETY: the semaphore was created exportable as OPAQUE_FD.
        let fd = unsafe { sem_fd.get_semaphore_fd(&info) }
            .map_err(InteropError::vk("vkGetSemaphoreFdKHR"))?;
        // SAFETY: a new fd owned by the caller.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}
