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
    #[test]
    fn a_client_builds_with_ring_installed() {
        super::client_builder().build().expect("a client");
        let provider = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        assert!(!provider.cipher_suites.is_empty());
    }
}
