//! The serial-port link source on pseudo-terminals: a stable conduit keeps
//! its session while the "device" (the pty's master) garbles a frame (the
//! link is reattached to the port that stays open) and while it is
//! unplugged (its by-id path goes away; the port is reopened by path once
//! it is back); a path that never comes back is a typed error after the
//! backoff gives up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use vox_conduit_stable::{StableConduit, StableConfig, StableStorage};
use vox_link_embedded::LinkChannel;
use vox_link_embedded::host::{Backoff, NoDrain, SerialPortSource, TcpLink, TokioClock, spawn_framed_stream};
use vox_tests::conduit_kit::{KitFamily, kit_msg};
use vox_tests::stable_harness::rng;
use vox_types::{Conduit, ConduitRx, ConduitTx, ConduitTxPermit, LinkError, LinkSource};

type M = embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
type Storage = StableStorage<M, 4096, 32, 4096, 32>;

/// A plugged-in "device": a pty's master (full duplex), and its slave
/// held open so the pty lives until the device is unplugged (a master
/// reads EIO while no slave is open).
struct Device {
    master: tokio_serial::SerialStream,
    _slave: tokio_serial::SerialStream,
    path: PathBuf,
}

fn plug_in() -> Device {
    use tokio_serial::SerialPort;
    let (master, slave) = tokio_serial::SerialStream::pair().expect("a pty pair");
    let path = PathBuf::from(slave.name().expect("the slave's path"));
    Device { master, _slave: slave, path }
}

/// Points the stable by-id path at `to` (like udev's `/dev/serial/by-id`).
fn point(link: &Path, to: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(to, link).unwrap();
}

async fn exchange(
    tx: &impl ConduitTx<Msg = KitFamily>,
    rx: &mut impl ConduitRx<Msg = KitFamily>,
    ids: std::ops::Range<u32>,
) {
    let send = async {
        for id in ids.clone() {
            tx.reserve().await.unwrap().send(kit_msg(id, "over a pty")).unwrap();
        }
    };
    let receive = async {
        for id in ids.clone() {
            let m = rx.recv().await.unwrap().unwrap();
            assert_eq!(m.get::<KitFamily>().id, id, "once, in order");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(send, receive) }).await.expect("in time");
}

/// Counts the source's opens for the test.
struct Counted(SerialPortSource, Arc<AtomicU32>);

impl LinkSource for Counted {
    type Link = TcpLink;
    async fn next_link(&mut self) -> Result<TcpLink, LinkError> {
        let link = self.0.next_link().await;
        self.1.store(self.0.opens(), Ordering::Relaxed);
        link
    }
}

// r[verify host.serial]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_garbled_frame_and_an_unplug_over_a_serial_port() {
    let dir = std::env::temp_dir().join(format!("vox-serial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let by_id = dir.join("ttyVOX");
    let device = plug_in();
    point(&by_id, &device.path);

    let config = StableConfig { timeout_ms: 500, keepalive_ms: 100, linger_ms: 1000, ..StableConfig::DEFAULT };
    // The host: the serial-port link source on the by-id path.
    let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100), give_up_after: None };
    let source = SerialPortSource::new(by_id.to_str().unwrap(), 115_200).with_backoff(backoff);
    let opens = Arc::new(AtomicU32::new(0));
    let (host, hd) = StableConduit::<KitFamily, Storage>::acceptor(Arc::new(Storage::new()), config).unwrap();
    let host_stats = host.stats_handle();
    tokio::spawn(hd.run(Counted(source, opens.clone()), rng(4), TokioClock));

    // The device: a stable initiator over the pty's master, one framed
    // link per plug-in.
    let device_links: Arc<LinkChannel<M, TcpLink>> = Arc::new(LinkChannel::new());
    let (dev, dd) = StableConduit::<KitFamily, Storage>::initiator(Arc::new(Storage::new()), config).unwrap();
    let links = device_links.clone();
    tokio::spawn(async move { dd.run(links.receiver(), TokioClock).await });
    let Device { master, _slave: slave, .. } = device;
    let (master_r, master_w) = tokio::io::split(NoDrain(master));
    let (garble_tx, mut garble_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    // The device's writes go through a task that can also inject garbage.
    let (to_master, mut from_device) = tokio::io::duplex(4096);
    let (dev_read, dev_write) = tokio::io::split(to_master);
    tokio::spawn(async move {
        let mut master_w = master_w;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                n = tokio::io::AsyncReadExt::read(&mut from_device, &mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if master_w.write_all(&buf[..n]).await.is_err() { return },
                },
                Some(()) = garble_rx.recv() => {
                    // A frame whose CRC is wrong: the host's link dies.
                    if master_w.write_all(&[0, 5, 1, 2, 3, 4, 0]).await.is_err() { return }
                }
            }
        }
    });
    let device_end = tokio::io::join(master_r, dev_write);
    let (link, device_runner) = spawn_framed_stream::<8, 1024, _>(device_end);
    device_links.offer(link).await;
    drop(dev_read);

    let (htx, mut hrx) = host.split();
    let (dtx, mut drx) = dev.split();
    exchange(&dtx, &mut hrx, 0..100).await;
    exchange(&htx, &mut drx, 0..100).await;
    assert_eq!(opens.load(Ordering::Relaxed), 1);

    // A garbled frame: the host's link dies; the next link attaches to the
    // port that is still open (no reopen).
    let reattached_before = host_stats.get().reattachments;
    garble_tx.send(()).unwrap();
    exchange(&dtx, &mut hrx, 100..150).await;
    exchange(&htx, &mut drx, 100..150).await;
    // (A CRC error or a malformed frame, depending on where the garbage
    // landed in the device's byte stream.)
    assert!(host_stats.get().reattachments > reattached_before, "the link died: {:?}", host_stats.get());
    assert_eq!(opens.load(Ordering::Relaxed), 1, "the link was reattached to the open port");

    // Unplug: the device goes away with its pty and its path. The host's
    // port fails; it reopens by path once the device is back.
    device_runner.abort();
    drop((slave, garble_tx));
    std::fs::remove_file(&by_id).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let device = plug_in();
    point(&by_id, &device.path);
    let Device { master, _slave: _held, .. } = device;
    let (link, _runner) = spawn_framed_stream::<8, 1024, _>(NoDrain(master));
    device_links.offer(link).await;
    exchange(&dtx, &mut hrx, 150..250).await;
    exchange(&htx, &mut drx, 150..250).await;
    assert_eq!(opens.load(Ordering::Relaxed), 2, "reopened by path");
    println!("host {:?}", host_stats.get());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_port_that_never_appears_is_a_typed_error_after_the_give_up() {
    let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), give_up_after: Some(3) };
    let mut source = SerialPortSource::new("/nonexistent/vox-tty", 115_200).with_backoff(backoff);
    let r = tokio::time::timeout(Duration::from_secs(5), source.next_link()).await.expect("quick");
    assert!(matches!(r, Err(LinkError::GaveUp { attempts: 3, .. })), "{:?}", r.err());
}
