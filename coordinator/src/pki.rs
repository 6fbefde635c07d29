//! Certificates for mutual TLS between agents and the coordinator, for one machine
//! and for tests (`aistor-coordinator pki`; `hack/up.sh` runs it). A cluster gets
//! its certificates from cert-manager or its own CA instead (deploy/README.md).
//!
//! An agent's certificate names its node as the subject's common name, in the
//! organisation [`AGENT_ORGANIZATION`]: the coordinator lets a connection report only
//! for that node (see `crate::identity`).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// The subject organisation of every agent certificate.
pub const AGENT_ORGANIZATION: &str = "aistor:agents";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("{0:?} is not a valid subject alternative name (a DNS name or an IP address)")]
    Host(String),
}

/// The CA of a directory: `ca.pem` and `ca-key.pem`, made on first use and reused
/// after, so certificates issued later still chain to what agents already trust.
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// Where one issued certificate and its key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long certificates made here are valid (a year; `hack/up.sh` re-issues them
/// when they are older than that).
const VALID_DAYS: i64 = 365;

impl Authority {
    pub fn open_or_create(dir: &Path) -> Result<Self, PkiError> {
        create_dir(dir)?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        let issuer = if cert_path.exists() && key_path.exists() {
            let key =
                KeyPair::from_pem(&read(&key_path)?).map_err(|source| PkiError::Certificate {
                    what: format!("{}", key_path.display()),
                    source,
                })?;
            Issuer::from_ca_cert_pem(&read(&cert_path)?, key).map_err(|source| {
                PkiError::Certificate {
                    what: format!("{}", cert_path.display()),
                    source,
                }
            })?
        } else {
            let key = new_key("the CA")?;
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "aistor local CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            valid_for(&mut params, VALID_DAYS * 10);
            let cert = params
                .self_signed(&key)
                .map_err(|source| PkiError::Certificate {
                    what: "the CA".into(),
                    source,
                })?;
            write(&cert_path, &cert.pem(), false)?;
            write(&key_path, &key.serialize_pem(), true)?;
            Issuer::new(params, key)
        };
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
        })
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The coordinator's server certificate for `hosts` (DNS names or IPs).
    pub fn issue_server(&self, hosts: &[String]) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "aistor-coordinator");
        for host in hosts {
            params.subject_alt_names.push(san(host)?);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        valid_for(&mut params, VALID_DAYS);
        self.issue("coordinator", params)
    }

    /// The certificate of the agent on `node`.
    pub fn issue_agent(&self, node: &str) -> Result<Issued, PkiError> {
        let mut params = agent_params(node);
        valid_for(&mut params, VALID_DAYS);
        self.issue(&format!("agent-{node}"), params)
    }

    /// An agent certificate with a validity of the caller's choosing (tests issue
    /// expired ones).
    pub fn issue_agent_valid(
        &self,
        node: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut params = agent_params(node);
        params.not_before = not_before;
        params.not_after = not_after;
        self.issue(&format!("agent-{node}"), params)
    }

    fn issue(&self, name: &str, params: CertificateParams) -> Result<Issued, PkiError> {
        let key = new_key(name)?;
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| PkiError::Certificate {
                    what: name.to_owned(),
                    source,
                })?;
        let issued = Issued {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        write(&issued.cert, &cert.pem(), false)?;
        write(&issued.key, &key.serialize_pem(), true)?;
        Ok(issued)
    }
}

/// `aistor-coordinator pki`: the CA (made once), the agent listener's certificate
/// for `hosts`, and one certificate per node; prints where each went.
pub fn issue(dir: &Path, hosts: &[String], nodes: &[String]) -> Result<(), PkiError> {
    let ca = Authority::open_or_create(dir)?;
    println!("ca: {}", ca.ca_path().display());
    let server = ca.issue_server(hosts)?;
    println!(
        "coordinator: {} {}",
        server.cert.display(),
        server.key.display()
    );
    for node in nodes {
        let agent = ca.issue_agent(node)?;
        println!(
            "agent {node}: {} {}",
            agent.cert.display(),
            agent.key.display()
        );
    }
    Ok(())
}

fn agent_params(node: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, node);
    name.push(DnType::OrganizationName, AGENT_ORGANIZATION);
    params.distinguished_name = name;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn valid_for(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // A minute back: a peer whose clock is slightly behind still accepts it.
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(days);
}

fn san(host: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // A DNS name: dot-separated labels of letters, digits and inner hyphens.
    let dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !dns {
        return Err(PkiError::Host(host.to_owned()));
    }
    host.to_owned()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| PkiError::Host(host.to_owned()))
}

fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Certificate {
        what: format!("a key for {what}"),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a PEM file; a key is readable by its owner only.
fn write(path: &Path, pem: &str, secret: bool) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    file.write_all(pem.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Authority::open_or_create(dir.path()).unwrap();
        let ca = std::fs::read_to_string(first.ca_path()).unwrap();
        first.issue_agent("node-a").unwrap();
        let again = Authority::open_or_create(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(again.ca_path()).unwrap(), ca);
        let issued = again.issue_agent("node-b").unwrap();
        let key_mode = std::fs::metadata(&issued.key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            crate::identity::agent_node_of_pem(&std::fs::read(&issued.cert).unwrap()).unwrap(),
            "node-b"
        );
    }

    #[test]
    fn a_host_that_is_no_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::open_or_create(dir.path()).unwrap();
        ca.issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        for bad in ["not a host", "", "-lead.example", "a..b", "under_score"] {
            assert!(
                matches!(ca.issue_server(&[bad.into()]), Err(PkiError::Host(_))),
                "{bad:?} accepted"
            );
        }
    }
}
