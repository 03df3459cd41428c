//! Certificates for TLS tests, made with the real `openssl` command: a private CA, a server
//! certificate for 127.0.0.1 and a client certificate signed by it, and on request a second,
//! unrelated CA (to prove a mismatch is refused).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA with one server and one client certificate, in a temporary directory.
pub struct Certs {
    dir: tempfile::TempDir,
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(dir: &Path, name: &str) -> String {
    let p: PathBuf = dir.join(name);
    p.to_string_lossy().into_owned()
}

/// A self-signed CA named `name` in `dir`: (`name`.pem, `name`.key).
fn ca(dir: &Path, name: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
        dir,
    );
}

/// A certificate `name` signed by the CA `ca`, with the extensions in `ext`.
fn signed(dir: &Path, ca: &str, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
        dir,
    );
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        ca(d, "ca");
        signed(
            d,
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        signed(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
        Certs {
            ca: path(d, "ca.pem"),
            server_cert: path(d, "server.pem"),
            server_key: path(d, "server.key"),
            client_cert: path(d, "client.pem"),
            client_key: path(d, "client.key"),
            dir,
        }
    }

    /// Another CA that signed none of these certificates.
    pub fn unrelated_ca(&self) -> String {
        ca(self.dir.path(), "other");
        path(self.dir.path(), "other.pem")
    }
}
