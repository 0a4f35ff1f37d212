//! A TCP proxy between QEMU's UART and the host that corrupts bytes and
//! drops the connection now and then: a flaky cable on an emulated device.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the line.
#[derive(Debug, Clone, Copy)]
pub struct ProxyFaults {
    /// A byte (either way) has one bit flipped with this probability, per
    /// million bytes.
    pub flip_ppm: u32,
    /// Drop the device's connection after it carried this many bytes
    /// (both ways together); 0 never.
    pub drop_after_bytes: u64,
    /// Drop at most this many connections.
    pub max_drops: u32,
    /// Seed of the corruption.
    pub seed: u64,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Connections from the device.
    pub connections: AtomicU32,
    /// Connections the proxy dropped.
    pub drops: AtomicU32,
    /// Bytes with a bit flipped.
    pub flipped: AtomicU64,
}

/// Forwards every connection accepted on `front` (QEMU dials it) to `back`
/// (the host listens there), applying `faults`. Runs until `front` fails.
pub async fn fault_proxy(
    front: TcpListener,
    back: std::net::SocketAddr,
    faults: ProxyFaults,
    counts: Arc<ProxyCounts>,
) {
    let mut n = 0u64;
    while let Ok((device, _)) = front.accept().await {
        let Ok(host) = TcpStream::connect(back).await else { return };
        let _ = (device.set_nodelay(true), host.set_nodelay(true));
        counts.connections.fetch_add(1, Ordering::Relaxed);
        n += 1;
        let drop_this = faults.drop_after_bytes > 0 && counts.drops.load(Ordering::Relaxed) < faults.max_drops;
        let budget = if drop_this { faults.drop_after_bytes } else { u64::MAX };
        let carried = Arc::new(AtomicU64::new(0));
        let (dr, dw) = device.into_split();
        let (hr, hw) = host.into_split();
        let up = pump(dr, hw, faults, faults.seed ^ n, carried.clone(), budget, counts.clone());
        let down = pump(hr, dw, faults, faults.seed ^ n.rotate_left(17), carried, budget, counts.clone());
        let counts = counts.clone();
        tokio::spawn(async move {
            // Either direction ending (a drop, or a peer gone) closes both.
            let cut = tokio::select! { cut = up => cut, cut = down => cut };
            if cut {
                counts.drops.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Copies `from` to `to`, flipping bits; returns `true` when it stopped
/// because the shared byte budget ran out (a deliberate drop).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: ProxyFaults,
    seed: u64,
    carried: Arc<AtomicU64>,
    budget: u64,
    counts: Arc<ProxyCounts>,
) -> bool {
    let mut rng = seed | 1;
    let mut buf = [0u8; 1024];
    loop {
        let Ok(k) = from.read(&mut buf).await else { return false };
        let Some(chunk) = buf.get_mut(..k).filter(|c| !c.is_empty()) else { return false };
        for b in chunk.iter_mut() {
            // xorshift64: a cheap deterministic stream of noise.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if faults.flip_ppm > 0 && (rng % 1_000_000) < u64::from(faults.flip_ppm) {
                *b ^= 1 << ((rng >> 32) % 8);
                counts.flipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if to.write_all(chunk).await.is_err() {
            return false;
        }
        if carried.fetch_add(k as u64, Ordering::Relaxed) + k as u64 >= budget {
            return true;
        }
    }
}
