//! `switchyard dev-certs DIR`: a local CA, a server certificate for localhost and
//! 127.0.0.1, and one client certificate, all signed by that CA (rcgen), so TLS and
//! mutual TLS can be tried in a minute. Not for production: the CA key sits beside
//! the certificates.

use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Why the certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
    #[error("{0}")]
    Out(#[from] std::io::Error),
}

/// Days each certificate is valid.
const VALID_DAYS: i64 = 365;

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(VALID_DAYS);
    p
}

fn save(dir: &Path, name: &str, text: &str, secret: bool) -> Result<String, DevCertsError> {
    let path = dir.join(name);
    let err = |source| DevCertsError::Write {
        path: path.display().to_string(),
        source,
    };
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Keys are never readable by others, not even between create and chmod.
    let mode = if secret { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .map_err(err)?;
    // An older file keeps its mode through `open`: set it again.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    Ok(path.display().to_string())
}

/// Writes `ca.pem`, `ca.key`, `server.pem`, `server.key`, `client.pem`, `client.key`
/// into `dir` (made if missing) and prints what it wrote and a config snippet.
pub fn write(dir: &Path, client: &str, out: &mut impl Write) -> Result<(), DevCertsError> {
    std::fs::create_dir_all(dir).map_err(|source| DevCertsError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let mut ca = params("switchyard dev CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = params("localhost");
    server.subject_alt_names = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?
    .subject_alt_names;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    let client_key = KeyPair::generate()?;
    let mut c = params(client);
    c.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = c.signed_by(&client_key, &ca_cert, &ca_key)?;

    let files = [
        (
            "ca.pem",
            ca_cert.pem(),
            false,
            "the CA: clients trust it (--ca), and tls.client_ca",
        ),
        (
            "ca.key",
            ca_key.serialize_pem(),
            true,
            "the CA's key: keep it, or delete it",
        ),
        (
            "server.pem",
            server_cert.pem(),
            false,
            "tls.cert: localhost, 127.0.0.1, ::1",
        ),
        ("server.key", server_key.serialize_pem(), true, "tls.key"),
        (
            "client.pem",
            client_cert.pem(),
            false,
            "--cert, for mutual TLS",
        ),
        ("client.key", client_key.serialize_pem(), true, "--cert-key"),
    ];
    for (name, text, secret, what) in &files {
        let path = save(dir, name, text, *secret)?;
        writeln!(out, "wrote {path:<40} {what}")?;
    }
    let d = dir.display();
    writeln!(
        out,
        "\nvalid {VALID_DAYS} days; client certificate CN = {client:?}\n\
         \n# config.toml\n[broker]\ntls = true\n\n[tls]\ncert = \"{d}/server.pem\"\n\
         key = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"   # optional: mutual TLS\n\
         \n# then, for example:\n\
         switchyard topics --tls --ca {d}/ca.pem --cert {d}/client.pem --cert-key {d}/client.key"
    )?;
    Ok(())
}
