//! Outgoing HTTP: provider keys, provider APIs, the OTLP exporter and `simulate`. reqwest runs
//! on rustls with ring as its crypto provider, installed for the whole process before a client
//! is built. reqwest's default provider, aws-lc-rs, compiles a C library whose build took more
//! than a minute of CI per build profile on 2 cores.

/// Makes ring the process's rustls crypto provider, unless one is installed already.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already: that one stays, and serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where every reqwest client of the service starts: without a provider installed, reqwest
/// (built without one of its own) panics when the client is built.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A test CA and a server certificate for 127.0.0.1 it signed (P-256, valid 2000-2126).
    const CA: &[u8] = include_bytes!("../tests/fixtures/tls/ca.pem");
    const SERVER_CERT: &[u8] = include_bytes!("../tests/fixtures/tls/server.pem");
    const SERVER_KEY: &[u8] = include_bytes!("../tests/fixtures/tls/server.key.pem");

    /// Serves one HTTPS request with `200 ok` on a loopback port, and answers the port.
    async fn one_https_answer() -> u16 {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(SERVER_CERT).unwrap()],
            PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            // A client that refuses the certificate ends the handshake: nothing to answer.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let read = tls.read(&mut buffer).await.unwrap();
                assert!(read > 0, "the client closed before its request ended");
                request.extend_from_slice(&buffer[..read]);
            }
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
        });
        port
    }

    /// A GET to a fresh [`one_https_answer`] server, with a client from `client`.
    async fn get_over_https(
        client: reqwest::ClientBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let port = one_https_answer().await;
        let client = client.no_proxy().build().expect("a client");
        client
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
    }

    #[tokio::test]
    async fn a_client_speaks_https_to_a_server_its_roots_trust() {
        let root = reqwest::Certificate::from_pem(CA).unwrap();
        let response = get_over_https(super::client_builder().add_root_certificate(root))
            .await
            .expect("a TLS handshake and an answer");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn a_client_refuses_a_server_no_root_vouches_for() {
        let error = get_over_https(super::client_builder())
            .await
            .expect_err("an unknown issuer");
        let chain = format!("{error:?}");
        assert!(chain.contains("UnknownIssuer"), "{chain}");
    }
}
