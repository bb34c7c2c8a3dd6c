//! What TLS trusts and presents, the way Bundler's OpenSSL would: the system store (for which
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` stand in when set), the bundled Mozilla roots as a floor, `ssl_ca_cert`, and a
//! client certificate from `ssl_client_cert`. Every unusable file is an error that names its setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// A path-valued setting and the words that name it in messages.
#[derive(Debug, Clone)]
pub(super) struct FileSetting {
    pub(super) path: PathBuf,
    pub(super) named: String,
}

/// The TLS set-up for every https agent, or why the settings cannot give one.
pub(super) fn config(
    ca_cert: Option<&FileSetting>,
    client_cert: Option<&FileSetting>,
) -> Result<TlsConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = match client_cert {
        None => None,
        Some(c) => Some(read_client_cert(c, &provider)?),
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider)
        .root_certs(RootCerts::Specific(Arc::new(roots(ca_cert)?)))
        .client_cert(client)
        .build())
}

fn roots(ca_cert: Option<&FileSetting>) -> Result<Vec<Certificate<'static>>, String> {
    let native = rustls_native_certs::load_native_certs();
    let env_set = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
        .copied()
        .collect::<Vec<_>>();
    if !env_set.is_empty() && !native.errors.is_empty() {
        return Err(format!(
            "could not read the certificates {} names: {}\n  point it at a PEM file (SSL_CERT_FILE) or a \
             directory of PEM files (SSL_CERT_DIR), or unset it",
            env_set.join(" / "),
            native
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut roots: Vec<Certificate<'static>> = native.certs.iter().map(owned).collect();
    // A floor under the system store: a minimal container without a CA bundle, or SSL_CERT_FILE naming only a
    // private CA, still reaches public hosts such as rubygems.org.
    roots.extend(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(owned));
    if let Some(ca) = ca_cert {
        let loaded = if ca.path.is_dir() {
            rustls_native_certs::load_certs_from_paths(None, Some(&ca.path))
        } else {
            rustls_native_certs::load_certs_from_paths(Some(&ca.path), None)
        };
        // Counted the way the handshake will use them: a file of unparsable certificates trusts nothing.
        let (added, _) =
            rustls::RootCertStore::empty().add_parsable_certificates(loaded.certs.clone());
        if added == 0 {
            return Err(format!(
                "{} names {}, but no certificate could be read from it{}\n  it must be a PEM file, or a \
                 directory of PEM files, with the CA certificates to trust",
                ca.named,
                ca.path.display(),
                match loaded.errors.first() {
                    Some(e) => format!(" ({e})"),
                    None => String::new(),
                }
            ));
        }
        roots.extend(loaded.certs.iter().map(owned));
    }
    Ok(roots)
}

fn owned(der: &CertificateDer<'_>) -> Certificate<'static> {
    Certificate::from_der(der.as_ref()).to_owned()
}

/// The certificate chain and key in `setting`'s PEM file, checked to belong together (ureq would panic on a
/// mismatch rather than say so).
fn read_client_cert(
    setting: &FileSetting,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<ClientCert, String> {
    let (chain, key, for_ureq) = read_pem(&setting.path).map_err(|why| {
        format!(
            "{} names {}, which {why}\n  it must be one PEM file with the certificate (and any \
             intermediates) followed by its private key",
            setting.named,
            setting.path.display()
        )
    })?;
    rustls::sign::CertifiedKey::from_der(chain.clone(), key, provider).map_err(|e| {
        format!(
            "{} ({}): the certificate and key do not go together: {e}",
            setting.named,
            setting.path.display()
        )
    })?;
    let chain: Vec<Certificate<'static>> = chain.iter().map(owned).collect();
    Ok(ClientCert::new_with_certs(&chain, for_ureq))
}

/// The chain and the key, the key also as ureq takes it (from PEM: its DER constructor needs a type it does not
/// export); the file is read once.
type ClientPem = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    PrivateKey<'static>,
);

fn read_pem(path: &Path) -> Result<ClientPem, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("holds no readable certificate ({e})"))?;
    if chain.is_empty() {
        return Err("holds no certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("holds no readable private key ({e})"))?;
    let for_ureq =
        PrivateKey::from_pem(&pem).map_err(|e| format!("holds no readable private key ({e})"))?;
    Ok((chain, key, for_ureq))
}
