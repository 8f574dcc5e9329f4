//! What a query held: the most the embedded engine's memory pool had
//! reserved ([`PeakPool`]) and the builder's peak resident set
//! ([`RssPeak`], sampled), both since the query started. The query log
//! (`--query-log`) gives both per query, so an operator sees how much of
//! `--memory-limit` each stage used and how much the process held beyond
//! it.

use datafusion::common::Result;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A memory pool that remembers the most it had reserved since
/// [`PeakPool::restart`]; the reservations themselves are `inner`'s.
#[derive(Debug)]
pub struct PeakPool {
    inner: Arc<dyn MemoryPool>,
    peak: AtomicUsize,
}

impl PeakPool {
    pub fn new(inner: Arc<dyn MemoryPool>) -> Self {
        PeakPool {
            inner,
            peak: AtomicUsize::new(0),
        }
    }

    /// The most reserved at once since the last [`PeakPool::restart`] (or
    /// since the pool was made).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from what is reserved now.
    pub fn restart(&self) {
        self.peak.store(self.inner.reserved(), Ordering::Relaxed);
    }

    fn saw(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl std::fmt::Display for PeakPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (peak {} bytes)", self.inner, self.peak())
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        "PeakPool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.saw();
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.saw();
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// The resident set in bytes now (`None` where the system does not say:
/// Linux's `VmRSS` in `/proc/self/status`, in kB whatever the page size).
pub fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Samples [`rss`] every 50 ms on a thread of its own, until dropped:
/// the peak of a query's resident set. (The kernel's own high-water mark
/// is the process's, and resetting it would also reset what `time` and
/// `getrusage` report at the end.)
pub struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    pub fn start() -> RssPeak {
        let peak = Arc::new(AtomicU64::new(rss().unwrap_or(0)));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let seen = peak.clone();
        let thread = std::thread::Builder::new()
            .name("rss-peak".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(50))
                {
                    seen.fetch_max(rss().unwrap_or(0), Ordering::Relaxed);
                }
            })
            .ok();
        RssPeak {
            peak,
            stop: Some(stop),
            thread,
        }
    }

    /// The peak so far, with a last sample (`None` where [`rss`] says
    /// nothing).
    pub fn peak(&self) -> Option<u64> {
        let now = rss()?;
        Some(self.peak.fetch_max(now, Ordering::Relaxed).max(now))
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn the_peak_is_the_most_reserved_since_the_restart() {
        let pool: Arc<dyn MemoryPool> =
            Arc::new(PeakPool::new(Arc::new(GreedyMemoryPool::new(1000))));
        let peak = || pool.downcast_ref::<PeakPool>().expect("a PeakPool").peak();
        let a = MemoryConsumer::new("a").register(&pool);
        a.try_grow(600).expect("600 of 1000");
        a.shrink(500);
        assert_eq!(peak(), 600);
        assert_eq!(pool.reserved(), 100);
        // Refused: the peak does not count what was not granted.
        assert!(a.try_grow(950).is_err());
        assert_eq!(peak(), 600);
        pool.downcast_ref::<PeakPool>()
            .expect("a PeakPool")
            .restart();
        assert_eq!(peak(), 100);
        a.grow(50);
        assert_eq!(peak(), 150);
        drop(a);
        assert_eq!(pool.reserved(), 0);
        assert_eq!(peak(), 150);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_rss_peak_sees_a_block_touched_and_freed_while_it_runs() {
        let sampler = RssPeak::start();
        let before = rss().expect("Linux gives VmRSS");
        let mut block = vec![0u8; 64 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&block);
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(block);
        let peak = sampler.peak().expect("Linux gives VmRSS");
        assert!(
            peak >= before + (60 << 20),
            "64 MB touched over {before} bytes, the peak seen was {peak}"
        );
    }
}
