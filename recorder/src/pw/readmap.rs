//! Read-only mappings of SHM buffers that PipeWire mapped without read access.
//!
//! Since 1.6, PipeWire maps a buffer's memory (`MAP_BUFFERS`) with exactly the access its
//! `spa_data.flags` grant: a producer that sets no `SPA_DATA_FLAG_READABLE` — xdg-desktop-portal-wlr
//! 0.7 sets no flags at all — gets a `PROT_NONE` mapping, and the first read of it faults
//! (pipewire-rs's `Data::data` hands that mapping out as a slice all the same). Before 1.6 every
//! such buffer was mapped readable, and a consumer is the reader of a capture stream whatever
//! the flag says. So a MemFd buffer without the flag is mapped read-only here, once per buffer
//! (its first frame), and unmapped when PipeWire removes the buffer: no per-frame mapping.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ptr::NonNull;

use pipewire::spa::sys::{spa_data, SPA_DATA_MemFd};
use zerocast_interop::BufferId;

/// Why a buffer's memory cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unreadable {
    #[error("buffer data of type {0} has no READABLE flag and no fd to map")]
    NoFd(u32),
    #[error("mapping the buffer's fd read-only failed: {0}")]
    Map(String),
}

/// One `mmap` of a buffer's fd: `len` bytes from `base`; the buffer's bytes start `skip` in
/// (the page-aligned start before `mapoffset`).
struct Mapping {
    base: NonNull<libc::c_void>,
    len: usize,
    skip: usize,
    size: usize,
}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `base` maps `len` = `skip + size` readable bytes (PROT_READ, MAP_SHARED) for as
        // long as `self` lives; the producer may write them meanwhile, which for u8 is only a
        // torn frame, never undefined behaviour of ours (the same holds for PipeWire's own map).
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().cast::<u8>().add(self.skip), self.size)
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned; no slice of it outlives `self`
        // (`bytes` borrows `self`).
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}

/// Maps `len` bytes of `fd` from `offset` (page-aligned by the caller) read-only.
fn map_read_only(fd: i32, offset: usize, len: usize) -> Result<NonNull<libc::c_void>, Unreadable> {
    // SAFETY: a fresh shared read-only mapping chosen by the kernel (null hint) aliases no Rust
    // object; failure is MAP_FAILED, checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Unreadable::Map(std::io::Error::last_os_error().to_string()));
    }
    NonNull::new(p).ok_or_else(|| Unreadable::Map("mmap returned null".into()))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// The read-only mappings of one stream's buffers that came without `READABLE`.
#[derive(Default)]
pub(super) struct ReadMaps {
    maps: HashMap<BufferId, Mapping>,
}

impl ReadMaps {
    /// The bytes of buffer `id`'s data `d` (its `maxsize` from `mapoffset`), mapped on first use.
    pub(super) fn bytes(&mut self, id: BufferId, d: &spa_data) -> Result<&[u8], Unreadable> {
        let mapping = match self.maps.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                if d.type_ != SPA_DATA_MemFd || d.fd < 0 {
                    return Err(Unreadable::NoFd(d.type_));
                }
                let page = page_size();
                let offset = d.mapoffset as usize;
                let aligned = offset - offset % page;
                let skip = offset - aligned;
                let size = d.maxsize as usize;
                let len = skip + size;
                let fd = i32::try_from(d.fd).map_err(|_| Unreadable::NoFd(d.type_))?;
                let base = map_read_only(fd, aligned, len)?;
                v.insert(Mapping {
                    base,
                    len,
                    skip,
                    size,
                })
            }
        };
        Ok(mapping.bytes())
    }

    /// PipeWire removed buffer `id`: its fd may be closed and reused, so its mapping goes.
    pub(super) fn forget(&mut self, id: BufferId) {
        self.maps.remove(&id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.maps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn memfd(bytes: &[u8]) -> OwnedFd {
        // SAFETY: memfd_create with a valid C string; the result is checked and owned once.
        let fd =
            unsafe { libc::memfd_create(c"zerocast-readmap-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        std::fs::File::from(fd.try_clone().unwrap())
            .write_all(bytes)
            .unwrap();
        fd
    }

    fn data(fd: &OwnedFd, mapoffset: u32, maxsize: u32) -> spa_data {
        // SAFETY: spa_data is a plain C struct for which all-zero is a valid (empty) value.
        let mut d: spa_data = unsafe { std::mem::zeroed() };
        d.type_ = SPA_DATA_MemFd;
        d.fd = fd.as_raw_fd() as i64;
        d.mapoffset = mapoffset;
        d.maxsize = maxsize;
        d
    }

    /// A buffer whose data starts past a page boundary and off it: the bytes handed out are the
    /// producer's, from `mapoffset`, `maxsize` long; the second call reuses the mapping.
    #[test]
    fn maps_from_mapoffset_once_per_buffer() {
        let page = page_size();
        let content: Vec<u8> = (0..3 * page).map(|i| (i * 7 % 251) as u8).collect();
        let fd = memfd(&content);
        let mut maps = ReadMaps::default();
        for (id, off, size) in [(1, 0, page), (2, page + 100, page), (3, 17, 2 * page)] {
            let d = data(&fd, off as u32, size as u32);
            assert_eq!(maps.bytes(id, &d).unwrap(), &content[off..off + size]);
            assert_eq!(maps.bytes(id, &d).unwrap(), &content[off..off + size]);
        }
        assert_eq!(maps.len(), 3);
        maps.forget(2);
        assert_eq!(maps.len(), 2);
    }

    #[test]
    fn a_buffer_without_an_fd_is_a_named_error() {
        let fd = memfd(&[0; 64]);
        let mut d = data(&fd, 0, 64);
        d.type_ = pipewire::spa::sys::SPA_DATA_MemPtr;
        d.fd = -1;
        assert_eq!(
            ReadMaps::default().bytes(1, &d).unwrap_err(),
            Unreadable::NoFd(pipewire::spa::sys::SPA_DATA_MemPtr)
        );
    }
}
