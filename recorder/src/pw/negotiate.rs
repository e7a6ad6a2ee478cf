//! Format negotiation as a state machine (loop thread only; no PipeWire calls here, so it is
//! unit-tested without a daemon).
//!
//! ```text
//! Offered(dmabuf pods + shm pod) ──Format with modifier──► Dmabuf{format, modifier}
//!        │                        ──Format without──────► Shm{format}
//!        ▲                                                   
//!        └── import failure in Dmabuf: drop that modifier (or all, per the interop fallback)
//!            and offer again; at most MAX_RENEGOTIATIONS times, the last offer is SHM only.
//! ```
//!
//! Renegotiations are bounded because xdpw 0.7 stops sending frames after one
//! (../shared/notes/headless-desktop.md #7): we only renegotiate when an import really failed.

use pipewire::spa::param::video::VideoFormat;
use zerocast_interop::{Fallback, Modifier};

use super::params;

/// Renegotiations per stream; the last one always offers SHM only, so this also bounds how
/// often a misbehaving producer can make us renegotiate.
pub(crate) const MAX_RENEGOTIATIONS: u32 = 2;

/// Where negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negotiation {
    /// EnumFormat pods are out; no (usable) format yet. Buffers arriving now belong to an older
    /// format and are given back untouched.
    Offered,
    /// DMA-BUF frames of `format` with `modifier`: imported into Vulkan.
    Dmabuf {
        format: VideoFormat,
        modifier: Modifier,
    },
    /// Shared-memory frames of `format`: copied on the CPU.
    Shm { format: VideoFormat },
}

/// A format the producer chose that we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    #[error("format {0:?} was not offered")]
    UnknownFormat(VideoFormat),
    #[error("modifier {modifier:?} of {format:?} is not in our offer")]
    NotOffered {
        format: VideoFormat,
        modifier: Modifier,
    },
}

#[derive(Debug)]
pub(crate) struct Negotiator {
    state: Negotiation,
    /// Modifiers still offered per format, in preference order. Empty: SHM only.
    offer: Vec<(VideoFormat, Vec<u64>)>,
    renegotiations: u32,
}

impl Negotiator {
    /// `offer`: the importable modifiers per format (empty when there is no usable GPU path).
    pub fn new(offer: Vec<(VideoFormat, Vec<u64>)>) -> Self {
        let offer = offer.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        Negotiator {
            state: Negotiation::Offered,
            offer,
            renegotiations: 0,
        }
    }

    pub fn state(&self) -> Negotiation {
        self.state
    }

    pub fn renegotiations(&self) -> u32 {
        self.renegotiations
    }

    /// Whether DMA-BUF pods are (still) part of the offer.
    pub fn offers_dmabuf(&self) -> bool {
        !self.offer.is_empty()
    }

    /// The EnumFormat pods of the current offer.
    pub fn enum_formats(&self) -> Vec<Vec<u8>> {
        params::enum_formats(&self.offer)
    }

    /// The producer fixed a format; `modifier` is `Some` when the format carries one (DMA-BUF).
    pub fn on_format(
        &mut self,
        format: VideoFormat,
        modifier: Option<u64>,
    ) -> Result<Negotiation, FormatError> {
        if params::pixel_format(format).is_none() {
            return Err(FormatError::UnknownFormat(format));
        }
        self.state = match modifier {
            Some(m) => {
                let offered = self
                    .offer
                    .iter()
                    .any(|(f, mods)| *f == format && mods.contains(&m));
                if !offered {
                    self.state = Negotiation::Offered;
                    return Err(FormatError::NotOffered {
                        format,
                        modifier: Modifier(m),
                    });
                }
                Negotiation::Dmabuf {
                    format,
                    modifier: Modifier(m),
                }
            }
            None => Negotiation::Shm { format },
        };
        Ok(self.state)
    }

    /// An import failed in state `Dmabuf`. Returns the EnumFormat pods to offer instead
    /// (`update_params`), or `None` when nothing is to be renegotiated (transient failure, or
    /// a renegotiation is already under way).
    pub fn on_import_failure(&mut self, fallback: Fallback) -> Option<Vec<Vec<u8>>> {
        let Negotiation::Dmabuf { format, .. } = self.state else {
            return None;
        };
        match fallback {
            Fallback::DropFrame | Fallback::CpuEncode => return None,
            Fallback::DropModifier { modifier, .. } => {
                for (f, mods) in &mut self.offer {
                    if *f == format {
                        mods.retain(|&m| m != modifier.0);
                    }
                }
                self.offer.retain(|(_, m)| !m.is_empty());
            }
            Fallback::Shm => self.offer.clear(),
        }
        self.renegotiations += 1;
        if self.renegotiations >= MAX_RENEGOTIATIONS {
            self.offer.clear();
        }
        self.state = Negotiation::Offered;
        Some(self.enum_formats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_interop::Fourcc;

    const X: u64 = 0x0100_0000_0000_0002;

    fn drop_mod(m: u64) -> Fallback {
        Fallback::DropModifier {
            fourcc: Fourcc::XRGB8888,
            modifier: Modifier(m),
        }
    }

    #[test]
    fn shm_only_without_gpu() {
        let mut n = Negotiator::new(vec![(VideoFormat::BGRx, vec![])]);
        assert!(!n.offers_dmabuf());
        assert_eq!(n.enum_formats(), vec![params::shm_enum_format()]);
        assert_eq!(
            n.on_format(VideoFormat::BGRx, None),
            Ok(Negotiation::Shm {
                format: VideoFormat::BGRx
            })
        );
        assert_eq!(n.on_import_failure(Fallback::Shm), None);
    }

    #[test]
    fn drops_failing_modifier_then_ends_on_shm() {
        let mut n = Negotiator::new(vec![(VideoFormat::BGRx, vec![X, 0])]);
        assert_eq!(n.enum_formats().len(), 2);
        n.on_format(VideoFormat::BGRx, Some(X)).unwrap();
        let pods = n.on_import_failure(drop_mod(X)).unwrap();
        assert_eq!(pods[0], params::dmabuf_enum_format(VideoFormat::BGRx, &[0]));
        assert_eq!(n.state(), Negotiation::Offered);
        // Buffers of the old format still failing must not renegotiate again.
        assert_eq!(n.on_import_failure(drop_mod(X)), None);
        n.on_format(VideoFormat::BGRx, Some(0)).unwrap();
        // The second renegotiation is the last: SHM only, even with modifiers left.
        let pods = n.on_import_failure(Fallback::DropFrame);
        assert_eq!(pods, None, "transient failures do not renegotiate");
        let pods = n.on_import_failure(drop_mod(0)).unwrap();
        assert_eq!(pods, vec![params::shm_enum_format()]);
        assert_eq!(n.renegotiations(), MAX_RENEGOTIATIONS);
        assert!(!n.offers_dmabuf());
    }

    #[test]
    fn shm_fallback_clears_everything() {
        let mut n = Negotiator::new(vec![
            (VideoFormat::BGRx, vec![0]),
            (VideoFormat::RGBx, vec![0]),
        ]);
        n.on_format(VideoFormat::RGBx, Some(0)).unwrap();
        assert_eq!(
            n.on_import_failure(Fallback::Shm),
            Some(vec![params::shm_enum_format()])
        );
        assert_eq!(n.renegotiations(), 1);
    }

    #[test]
    fn rejects_modifier_not_offered() {
        let mut n = Negotiator::new(vec![(VideoFormat::BGRx, vec![0])]);
        assert!(matches!(
            n.on_format(VideoFormat::BGRx, Some(X)),
            Err(FormatError::NotOffered { .. })
        ));
        assert!(n.on_format(VideoFormat::NV12, None).is_err());
    }
}
