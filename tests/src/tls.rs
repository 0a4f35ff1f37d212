//! A stable conduit over TLS on TCP: resume keys name sessions but do not
//! authenticate peers, so over an untrusted network the byte stream is
//! TLS. The framing works over any byte stream, so a `tokio-rustls`
//! stream composes with the library's `spawn_framed_stream`. Link sources
//! for both sides, and a self-signed certificate made at run time.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use vox_link_embedded::host::{TcpLink, spawn_framed_stream};
use vox_types::{LinkError, LinkSource};

fn io(e: std::io::Error) -> LinkError {
    LinkError::Io(e.kind().into())
}

/// A self-signed certificate for `localhost` and its key, made now.
pub fn self_signed() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    Ok((cert.cert.der().clone(), key))
}

fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// Dials `addr` and speaks TLS to a server that presents `trusted`, for
/// every new link.
pub struct TlsDialer {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl TlsDialer {
    /// A dialer trusting only `trusted` (the server's certificate).
    pub fn new(addr: SocketAddr, trusted: CertificateDer<'static>) -> Result<Self, tokio_rustls::rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(trusted)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { addr, connector: TlsConnector::from(Arc::new(config)) })
    }
}

impl LinkSource for TlsDialer {
    type Link = TcpLink;

    async fn next_link(&mut self) -> Result<TcpLink, LinkError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let name = ServerName::try_from("localhost").map_err(|_| LinkError::Malformed)?;
        let tls = self.connector.connect(name, tcp).await.map_err(io)?;
        Ok(spawn_framed_stream(tls).0)
    }
}

/// Accepts TCP connections and speaks TLS with `cert`, one link each.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// A TLS server on `listener` presenting `cert`.
    pub fn new(
        listener: TcpListener,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, tokio_rustls::rustls::Error> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        Ok(Self { listener, acceptor: TlsAcceptor::from(Arc::new(config)) })
    }
}

impl LinkSource for TlsListener {
    type Link = TcpLink;

    async fn next_link(&mut self) -> Result<TcpLink, LinkError> {
        loop {
            let (tcp, _) = self.listener.accept().await.map_err(io)?;
            tcp.set_nodelay(true).map_err(io)?;
            // A failed TLS handshake is that connection's problem, not the
            // listener's: take the next one.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return Ok(spawn_framed_stream(tls).0);
            }
        }
    }
}
