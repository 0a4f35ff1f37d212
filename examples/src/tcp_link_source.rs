//! Link sources over TCP: a reconnecting dialer and a listener, each link a
//! `FramedLink` whose runner runs on tokio.

use crate::framed_tcp::{ExampleLink, spawn_framed};
use tokio::net::{TcpListener, TcpStream};
use vox_types::{LinkError, LinkSource};

fn io(e: std::io::Error) -> LinkError {
    LinkError::Io(e.kind().into())
}

/// Dials `addr` for every new link (a reconnecting TCP client).
pub struct TcpDialer {
    addr: std::net::SocketAddr,
}

impl TcpDialer {
    /// Dials `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self { addr }
    }
}

impl LinkSource for TcpDialer {
    type Link = ExampleLink;

    async fn next_link(&mut self) -> Result<ExampleLink, LinkError> {
        let stream = TcpStream::connect(self.addr).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(spawn_framed(stream).0)
    }
}

/// Accepts one connection per new link.
pub struct TcpAcceptSource {
    listener: TcpListener,
}

impl TcpAcceptSource {
    /// Accepts on `listener`.
    pub fn new(listener: TcpListener) -> Self {
        Self { listener }
    }
}

impl LinkSource for TcpAcceptSource {
    type Link = ExampleLink;

    async fn next_link(&mut self) -> Result<ExampleLink, LinkError> {
        let (stream, _) = self.listener.accept().await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(spawn_framed(stream).0)
    }
}
