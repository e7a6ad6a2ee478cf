//! Explicit sync (PipeWire's SyncTimeline meta): the compositor's acquire and release timelines
//! imported as Vulkan timeline semaphores, so the conversion waits for the compositor's
//! rendering on the GPU and tells the compositor on the GPU when it may reuse the buffer.
//!
//! The fds are DRM syncobjs from a compositor; Mesa's drivers import a syncobj as an
//! `OPAQUE_FD` timeline semaphore. On the GPU test machine (no DRM) the test producer hands out
//! Vulkan timelines exported as `OPAQUE_FD`, which take the same import call.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use ash::vk;

use crate::error::{InteropError, Result};
use crate::vk::context::{ContextInner, VulkanContext};

/// One of the compositor's timelines, imported.
pub struct ImportedTimeline {
    shared: Arc<ContextInner>,
    sem: vk::Semaphore,
}

// SAFETY: a semaphore handle may be used from any thread; host signals go through the device,
// which is thread-safe for these calls.
unsafe impl Send for ImportedTimeline {}

impl ImportedTimeline {
    /// Imports `fd` (dup'ed: the buffer keeps its own) as a timeline semaphore.
    pub fn import(ctx: &VulkanContext, fd: BorrowedFd<'_>) -> Result<Self> {
        let s = &ctx.shared;
        let sem_fd = s
            .sem_fd
            .as_ref()
            .ok_or_else(|| InteropError::MissingFeature {
                device: s.info.name.clone(),
                what: "VK_KHR_external_semaphore_fd",
            })?;
        let mut ty = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let info = vk::SemaphoreCreateInfo::default().push_next(&mut ty);
        // SAFETY: valid create info; the timelineSemaphore feature is enabled by the context.
        let sem = unsafe { s.device.create_semaphore(&info, None) }
            .map_err(InteropError::vk("vkCreateSemaphore(import)"))?;
        let imported = ImportedTimeline {
            shared: Arc::clone(s),
            sem,
        };
        // Vulkan takes ownership of the fd on success only.
        // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd or -1.
        let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(InteropError::InvalidDmabuf(format!(
                "cannot dup a sync timeline fd: {}",
                std::io::Error::last_os_error()
            )));
        }
        let import = vk::ImportSemaphoreFdInfoKHR::default()
            .semaphore(sem)
            // VUID-VkImportSemaphoreFdInfoKHR-handleType-03264: a timeline semaphore imports
            // OPAQUE_FD only (SYNC_FD payloads are binary).
            .handle_type(vk::ExternalSemaphoreHandleTypeFlags::OPAQUE_FD)
            .fd(dup);
        // SAFETY: `sem` is a new, unused semaphore of this device; `dup` is ours to give.
        if let Err(e) = unsafe { sem_fd.import_semaphore_fd(&import) } {
            // SAFETY: the import failed, so the fd is still ours.
            unsafe { libc::close(dup) };
            return Err(InteropError::vk("vkImportSemaphoreFdKHR(sync timeline)")(e));
        }
        Ok(imported)
    }

    /// The value the timeline has reached.
    pub fn value(&self) -> Result<u64> {
        // SAFETY: a timeline semaphore of this device.
        unsafe { self.shared.device.get_semaphore_counter_value(self.sem) }
            .map_err(InteropError::vk("vkGetSemaphoreCounterValue"))
    }

    /// Signals `value` from the CPU (a buffer we give back without reading it). Values not above
    /// the current one are already signalled and are left alone (a timeline only moves up).
    pub fn signal(&self, value: u64) -> Result<()> {
        if value <= self.value()? {
            return Ok(());
        }
        let info = vk::SemaphoreSignalInfo::default()
            .semaphore(self.sem)
            .value(value);
        // SAFETY: VUID-VkSemaphoreSignalInfo-value-03258: value is above the current one
        // (checked just above; only we signal this timeline's release points).
        unsafe { self.shared.device.signal_semaphore(&info) }
            .map_err(InteropError::vk("vkSignalSemaphore"))
    }

    pub(crate) fn raw(&self) -> vk::Semaphore {
        self.sem
    }
}

impl Drop for ImportedTimeline {
    fn drop(&mut self) {
        // A submission may still wait on or signal it: wait for all our submissions (this runs
        // on buffer removal and format changes, not per frame).
        let last = self.shared.queue.lock().map(|q| q.last_value).unwrap_or(0);
        let _ = self
            .shared
            .timeline
            .wait(&self.shared.device, last, Duration::from_secs(5));
        // SAFETY: no pending submission uses the semaphore (waited above).
        unsafe { self.shared.device.destroy_semaphore(self.sem, None) };
    }
}

/// A frame's explicit-sync points: the GPU waits for `acquire` before reading the buffer and
/// signals `release` when it is done with it.
#[derive(Clone, Copy)]
pub struct SyncPoints<'a> {
    pub acquire: (&'a ImportedTimeline, u64),
    pub release: (&'a ImportedTimeline, u64),
}
