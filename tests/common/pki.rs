//! A throwaway PKI for the TLS tests, written as PEM files: two CAs, and leaves for
//! `localhost` / `127.0.0.1` signed by either, valid or expired.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA whose certificate is at `cert`.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
}

/// A leaf's certificate and key files.
#[derive(Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = dir.join(format!("{name}.pem"));
        std::fs::write(&cert, p.self_signed(&key).expect("self-signed").pem()).expect("write");
        Ca {
            issuer: Issuer::new(p, key),
            cert,
        }
    }

    /// A leaf for localhost and 127.0.0.1, written to `dir/<stem>.{pem,key}`; `expired`
    /// makes it valid in 2020 only.
    pub fn leaf(&self, dir: &Path, stem: &str, expired: bool) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
        p.distinguished_name.push(DnType::CommonName, stem);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}
