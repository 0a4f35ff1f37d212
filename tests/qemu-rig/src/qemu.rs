//! Running the demo firmware under QEMU: install QEMU when missing, build a
//! firmware binary, start QEMU with the UART on a loopback TCP connection
//! to a host listener, and make sure QEMU never outlives its user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// At most this many QEMUs run at once in one process (CI has 2 cores).
pub const MAX_PARALLEL_QEMU: usize = 2;
static QEMU_SLOTS: Semaphore = Semaphore::const_new(MAX_PARALLEL_QEMU);
static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The emulated boards the firmware supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// `lm3s6965evb`: Cortex-M3, built for `thumbv7m-none-eabi`.
    Lm3s6965,
    /// `microbit`: nRF51822 Cortex-M0, built for `thumbv6m-none-eabi`.
    Microbit,
}

impl Board {
    /// QEMU's machine name.
    pub fn machine(self) -> &'static str {
        match self {
            Self::Lm3s6965 => "lm3s6965evb",
            Self::Microbit => "microbit",
        }
    }

    /// Rust target triple.
    pub fn target(self) -> &'static str {
        match self {
            Self::Lm3s6965 => "thumbv7m-none-eabi",
            Self::Microbit => "thumbv6m-none-eabi",
        }
    }

    fn feature(self) -> &'static str {
        match self {
            Self::Lm3s6965 => "board-lm3s6965",
            Self::Microbit => "board-microbit",
        }
    }
}

/// The workspace root (where `scripts/` lives; this crate is
/// `tests/qemu-rig`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default()
}

/// The QEMU firmware crate's directory (`examples/firmware`).
pub fn firmware_dir() -> PathBuf {
    workspace_root().join("examples").join("firmware")
}

/// Installs `qemu-system-arm` with `scripts/install-qemu.sh` unless it is
/// on the `PATH` already.
pub fn ensure_qemu() -> Result<(), String> {
    let present = Command::new("qemu-system-arm").arg("--version").stdout(Stdio::null()).status();
    if matches!(present, Ok(s) if s.success()) {
        return Ok(());
    }
    let script = workspace_root().join("scripts/install-qemu.sh");
    let status = Command::new("bash").arg(&script).status().map_err(|e| format!("{}: {e}", script.display()))?;
    if status.success() { Ok(()) } else { Err(format!("{} failed: {status}", script.display())) }
}

/// Builds firmware binary `bin` for `board` in release mode, with extra
/// cargo `features`, and returns the ELF's path.
pub fn build_firmware(bin: &str, board: Board, features: &[&str]) -> Result<PathBuf, String> {
    let _serial = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = firmware_dir();
    // A separate target directory per feature set keeps the binaries apart.
    let flavour = if features.is_empty() { "plain".to_string() } else { features.join("+") };
    let target_dir = dir.join("target").join(flavour);
    let mut all_features = vec![board.feature()];
    all_features.extend_from_slice(features);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--quiet", "--no-default-features", "--bin", bin, "--target", board.target()])
        .arg("--features")
        .arg(all_features.join(","))
        .arg("--target-dir")
        .arg(&target_dir)
        // The host build's settings must not leak into the firmware's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("firmware build of {bin} failed:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(target_dir.join(board.target()).join("release").join(bin))
}

/// How QEMU's UART reaches the host.
#[derive(Debug, Clone, Copy)]
pub enum Uart {
    /// Not connected.
    Null,
    /// QEMU connects to this loopback port; with `reconnect`, it dials
    /// again a second after the connection drops.
    Tcp {
        /// Host listener port.
        port: u16,
        /// Redial after a drop.
        reconnect: bool,
    },
    /// A pseudo-terminal, as a board's `/dev/ttyACM0` would be: its path
    /// is [`Qemu::pty`].
    Pty,
}

/// QEMU's stdout when not captured: the file named by `VOX_QEMU_STDOUT`
/// (to keep a defmt firmware's log for `defmt-print`), else nothing.
/// Reads QEMU's "char device redirected to /dev/pts/N" line from its
/// stdout (and keeps draining stdout so QEMU never blocks on it; a pty
/// run does not capture the firmware's output).
async fn pty_path(child: &mut std::process::Child) -> Result<std::path::PathBuf, String> {
    use std::io::BufRead;
    let stderr = child.stdout.take().ok_or("no stdout")?;
    let (found_tx, found_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found_tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let path = line.split_whitespace().find(|w| w.starts_with("/dev/pts/")).map(std::path::PathBuf::from);
            if let (Some(path), Some(tx)) = (path, found.take()) {
                let _ = tx.send(path);
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), found_rx)
        .await
        .map_err(|_| "QEMU did not say where its pty is".to_string())?
        .map_err(|_| "QEMU exited before opening its pty".to_string())
}

fn debug_stdout() -> Stdio {
    let file = std::env::var_os("VOX_QEMU_STDOUT")
        .and_then(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).ok());
    file.map_or_else(Stdio::null, Stdio::from)
}

/// A running QEMU: killed when dropped, and by `timeout` at the latest.
pub struct Qemu {
    child: Option<std::process::Child>,
    _slot: SemaphorePermit<'static>,
    pty: Option<std::path::PathBuf>,
}

impl Qemu {
    /// Starts `elf` on `board` with semihosting on, under `timeout`
    /// (`limit`); waits for one of [`MAX_PARALLEL_QEMU`] slots first.
    /// QEMU's stdout (semihosting output) and stderr are captured for
    /// [`Qemu::wait`] when `capture_stdout`.
    pub async fn start(
        elf: &Path,
        board: Board,
        uart: Uart,
        limit: Duration,
        capture_stdout: bool,
    ) -> Result<Self, String> {
        let slot = QEMU_SLOTS.acquire().await.map_err(|e| e.to_string())?;
        let serial = match uart {
            Uart::Null => "null".to_string(),
            Uart::Tcp { port, reconnect: false } => format!("tcp:127.0.0.1:{port},nodelay=on"),
            Uart::Tcp { port, reconnect: true } => format!("tcp:127.0.0.1:{port},nodelay=on,reconnect=1"),
            Uart::Pty => "pty".to_string(),
        };
        let pty = matches!(uart, Uart::Pty);
        let child = Command::new("timeout")
            .args([
                "--signal=KILL",
                &limit.as_secs().max(1).to_string(),
                "qemu-system-arm",
                "-machine",
                board.machine(),
            ])
            .args(["-display", "none", "-monitor", "none", "-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            .arg(serial)
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(if capture_stdout || pty { Stdio::piped() } else { debug_stdout() })
            .stderr(if capture_stdout { Stdio::piped() } else { Stdio::null() })
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-arm: {e}"))?;
        let mut child = child;
        let pty = if pty { Some(pty_path(&mut child).await?) } else { None };
        Ok(Self { child: Some(child), _slot: slot, pty })
    }

    /// The path of the device's UART when it is a pseudo-terminal.
    pub fn pty(&self) -> Option<&Path> {
        self.pty.as_deref()
    }

    /// Waits for QEMU to exit (semihosting exit) and returns its exit code
    /// and captured stdout; `None` when it was killed (timeout).
    pub async fn wait(mut self) -> Result<(Option<i32>, Vec<u8>, String), String> {
        let Some(child) = self.child.take() else { return Err("already waited".into()) };
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok((output.status.code(), output.stdout, String::from_utf8_lossy(&output.stderr).into_owned()))
    }

    /// Stops QEMU now (a device power cut).
    pub fn stop(mut self) {
        self.kill();
    }

    /// Stops QEMU and returns what it printed on stdout (started with
    /// `capture_stdout`; keep the output small, nothing reads it while
    /// QEMU runs).
    pub async fn stop_with_output(mut self) -> Result<Vec<u8>, String> {
        let Some(child) = self.child.take() else { return Err("already stopped".into()) };
        let _ = Command::new("pkill").args(["-KILL", "-P", &child.id().to_string()]).status();
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(output.stdout)
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGKILL `timeout` and QEMU both: QEMU is `timeout`'s only child
        // and shares its process group only if we made one, so kill QEMU by
        // its parent's pid.
        let _ = Command::new("pkill").args(["-KILL", "-P", &child.id().to_string()]).status();
        let _ = child.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}
