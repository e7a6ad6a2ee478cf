//! Preallocated sample buffers that travel between threads, so the realtime capture callback
//! and the steady state allocate nothing: a buffer is taken from a free list (bounded std
//! channel: `try_recv`/`try_send` on its array never allocate), filled, sent, and given back.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use super::CHANNELS;

/// Frames one [`Chunk`] holds. A PipeWire buffer larger than this (quantum above 2048) is
/// split over several chunks.
pub const CHUNK_FRAMES: usize = 2048;
/// Chunks per source: 64 × 2048 frames ≈ 2.7 s at 48 kHz, enough to ride out a busy consumer
/// and the wait for the first video frame.
pub const CHUNKS_PER_SOURCE: usize = 64;
/// Frames per [`Block`] sent to the encoder: 100 ms, so that audio adds ~10 messages per
/// second and track to the encoder queue.
pub const BLOCK_FRAMES: usize = 4800;
/// Blocks in flight per recording (shared by all tracks): bounds the encoder queue.
pub const BLOCKS: usize = 4;

/// Captured samples of one source, as PipeWire delivered them.
#[derive(Debug)]
pub struct Chunk {
    /// Index of the source (capture stream) in the recording.
    pub source: usize,
    /// CLOCK_MONOTONIC time of the first frame, ns.
    pub time_ns: i64,
    /// Interleaved F32 stereo; `data.len() / CHANNELS` frames. Capacity stays
    /// `CHUNK_FRAMES * CHANNELS`.
    pub data: Vec<f32>,
}

impl Chunk {
    fn new(source: usize) -> Chunk {
        Chunk {
            source,
            time_ns: 0,
            data: Vec::with_capacity(CHUNK_FRAMES * CHANNELS),
        }
    }

    pub fn frames(&self) -> usize {
        self.data.len() / CHANNELS
    }
}

/// One source's free list: the capture callback takes, the consumer gives back.
pub struct ChunkPool {
    pub take: Receiver<Chunk>,
    pub give_back: SyncSender<Chunk>,
}

impl ChunkPool {
    /// Allocates `CHUNKS_PER_SOURCE` chunks for source `source`.
    pub fn new(source: usize) -> ChunkPool {
        let (tx, rx) = sync_channel(CHUNKS_PER_SOURCE);
        for _ in 0..CHUNKS_PER_SOURCE {
            tx.try_send(Chunk::new(source))
                .expect("the channel holds exactly the pool");
        }
        ChunkPool {
            take: rx,
            give_back: tx,
        }
    }
}

/// Gives a chunk back to its source's pool (one sender per source, indexed by
/// `chunk.source`). Never blocks: the pool channel holds every chunk of that source.
pub fn recycle(returns: &[SyncSender<Chunk>], mut chunk: Chunk) {
    chunk.data.clear();
    if let Some(tx) = returns.get(chunk.source) {
        match tx.try_send(chunk) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => debug_assert!(false, "a chunk came back twice"),
        }
    }
}

/// Contiguous samples of one track at a known position in the file.
#[derive(Debug)]
pub struct Block {
    pub track: usize,
    /// Position of the first frame in the file, in frames at [`super::RATE`].
    pub pos: i64,
    /// Interleaved F32 stereo, capacity `BLOCK_FRAMES * CHANNELS`.
    pub data: Vec<f32>,
}

impl Block {
    pub fn frames(&self) -> usize {
        self.data.len() / CHANNELS
    }
}

/// The recording's blocks: taken by the audio thread, given back by the encoder thread.
pub struct BlockPool {
    free: Receiver<Block>,
    back: SyncSender<Block>,
}

/// The encoder thread's end of a [`BlockPool`].
#[derive(Clone)]
pub struct BlockReturn(SyncSender<Block>);

impl BlockReturn {
    pub fn give_back(&self, mut block: Block) {
        block.data.clear();
        let _ = self.0.try_send(block);
    }
}

impl BlockPool {
    pub fn new(n: usize) -> BlockPool {
        let (tx, rx) = sync_channel(n);
        for _ in 0..n {
            tx.try_send(Block {
                track: 0,
                pos: 0,
                data: Vec::with_capacity(BLOCK_FRAMES * CHANNELS),
            })
            .expect("the channel holds exactly the pool");
        }
        BlockPool { free: rx, back: tx }
    }

    /// Waits for a free block (the encoder is behind at most `BLOCKS` blocks); `None` when the
    /// encoder thread is gone or `timeout` passed.
    pub fn take(&self, timeout: std::time::Duration) -> Option<Block> {
        self.free.recv_timeout(timeout).ok()
    }

    pub fn returner(&self) -> BlockReturn {
        BlockReturn(self.back.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_bounded_and_recycle() {
        let pool = ChunkPool::new(3);
        let mut taken = Vec::new();
        while let Ok(c) = pool.take.try_recv() {
            assert_eq!(c.source, 3);
            assert_eq!(c.data.capacity(), CHUNK_FRAMES * CHANNELS);
            taken.push(c);
        }
        assert_eq!(taken.len(), CHUNKS_PER_SOURCE);
        let returns = vec![pool.give_back.clone(); 4];
        for mut c in taken {
            c.data.extend_from_slice(&[1.0, 2.0]);
            recycle(&returns, c);
        }
        let c = pool.take.try_recv().unwrap();
        assert!(c.data.is_empty());

        let blocks = BlockPool::new(2);
        let a = blocks.take(std::time::Duration::ZERO).unwrap();
        let _b = blocks.take(std::time::Duration::ZERO).unwrap();
        assert!(blocks.take(std::time::Duration::ZERO).is_none());
        blocks.returner().give_back(a);
        assert!(blocks.take(std::time::Duration::ZERO).is_some());
    }
}
