//! The host's end of a QEMU device's serial line (its UART on a TCP
//! chardev): accepts the device's connections, a new one after every drop,
//! and keeps a framed link attached to the current one through the
//! library's `FramedPort`; host sessions take their links from it.

use embedded_io_adapters::tokio_1::FromTokio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vox_conduit_stable::ConfigError;
use vox_demo_host::device_host::{HostLink, HostLinkStorage, HostSession, M};
use vox_link_embedded::host::TokioClock;
use vox_link_embedded::{FramedLinkStorage, FramedPort, SharedLinkChannel, framed::FramedStats};

/// The host's end of the device's serial line: accepts the device's TCP
/// connections (a new one after every drop) and keeps a framed link
/// attached to the current one.
pub struct TcpSerialPort {
    /// Where the conduit takes its links from.
    pub links: SharedLinkChannel<M, HostLink>,
    connections: AtomicU32,
    /// The links' storage, reused for every link of every connection: its
    /// counters add up across all of them.
    storage: Arc<HostLinkStorage>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TcpSerialPort {
    /// Serves connections accepted on `listener` until dropped.
    pub fn spawn(listener: TcpListener) -> Arc<Self> {
        let port = Arc::new(Self {
            links: SharedLinkChannel::new(),
            connections: AtomicU32::new(0),
            storage: Arc::new(FramedLinkStorage::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(Self::serve(Arc::downgrade(&port), listener));
        *port.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        port
    }

    async fn serve(port: std::sync::Weak<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let Some(me) = port.upgrade() else { return };
            let _ = stream.set_nodelay(true);
            me.connections.fetch_add(1, Ordering::Relaxed);
            let (r, w) = stream.into_split();
            let (mut reader, mut writer) = (FromTokio::new(r), FromTokio::new(w));
            // The stream ended or failed: wait for the device to connect again.
            FramedPort::new(me.storage.clone())
                .serve(&mut reader, &mut writer, &TokioClock, |link| me.links.offer(link))
                .await;
        }
    }

    /// A new host session on this port's links.
    pub fn session(&self) -> Result<HostSession, ConfigError> {
        HostSession::start_on(self.links.clone())
    }

    /// Connections the device made so far.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Framed-link counters of every link so far (the current one
    /// included).
    pub fn framed(&self) -> FramedStats {
        self.storage.stats()
    }
}

impl Drop for TcpSerialPort {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
