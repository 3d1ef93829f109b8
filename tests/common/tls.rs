//! Certificates made by the tests (rcgen): a CA of the test's own, and
//! server certificates it signs, so that a client trusting only that CA
//! proves the server presented what it was given.

#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use std::path::{Path, PathBuf};

/// The host name the HTTPS tests use (resolved to 127.0.0.1 by the
/// clients): not `localhost`, where browsers relax their rules.
pub const HOST: &str = "miulink.test";

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM), for clients to trust.
    pub pem: String,
}

/// A server certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate as sent on the wire (DER), to compare with what a
    /// client was shown.
    pub der: Vec<u8>,
    /// SHA-256 of its public key (base64), for Chromium's
    /// `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "MIU Link test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `HOST` and 127.0.0.1, valid now for a year, with
    /// `name` as its common name (so tests can tell two apart).
    pub fn leaf(&self, name: &str) -> Leaf {
        self.leaf_valid(name, None)
    }

    /// As [`TestCa::leaf`], but expired since 2020.
    pub fn expired_leaf(&self, name: &str) -> Leaf {
        self.leaf_valid(
            name,
            Some((date_time_ymd(2019, 1, 1), date_time_ymd(2020, 1, 1))),
        )
    }

    fn leaf_valid(
        &self,
        name: &str,
        validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>,
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec![HOST.to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        if let Some((from, to)) = validity {
            params.not_before = from;
            params.not_after = to;
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64;
            params.not_before =
                time::OffsetDateTime::from_unix_timestamp(now - 3600).expect("time");
            params.not_after =
                time::OffsetDateTime::from_unix_timestamp(now + 365 * 86_400).expect("time");
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        use base64::Engine;
        use sha2::Digest;
        let spki = key.subject_public_key_info();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            spki_sha256: base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(spki)),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl Leaf {
    /// Writes `cert.pem` and `key.pem` into `dir` (replacing them).
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_replacing(&cert, &self.cert_pem);
        write_replacing(&key, &self.key_pem);
        (cert, key)
    }
}

/// Writes a file whole: a new file renamed over the old one, as
/// certificate tools do, so a reader never sees half of it.
pub fn write_replacing(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A reqwest client that trusts only `ca`, resolves [`HOST`] to this
/// machine and opens a connection per request; [`presented`] gives the
/// certificate the server showed.
pub fn client_trusting(ca: &TestCa, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("CA PEM"))
        .resolve(HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .tls_info(true)
        .cookie_store(true)
        // Every request on a new connection: a reloaded certificate is
        // only shown to new connections.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// The certificate (DER) a response came over.
pub fn presented(res: &reqwest::Response) -> Vec<u8> {
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS response with the server's certificate")
        .to_vec()
}
