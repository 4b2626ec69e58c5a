"""Certificates for a broker on loopback, made with openssl: for `hanctl bench --tls` and
the tests' TLS brokers (hanctl.broker.Mosquitto's tls=, which reads CERT_FILES).

- make_ca: a folder with a CA (ca.pem, ca.key) and a server certificate it signs
  (server.pem, server.key) for localhost and 127.0.0.1; with der=True the CA in DER too
  (ca.der, what MicroPython's cadata= takes); with other_ca a second CA that signed nothing
  (other_ca.pem, other_ca.key, other_ca.der).
- server_cert: another server certificate that a make_ca CA signs, with the names and
  validity dates a test asks for.

Keys are RSA-2048 ("rsa") or EC on P-256 ("ec"). Certificates are valid for two days from
now unless dates are given.
"""

import secrets
import shutil
import subprocess
from pathlib import Path

SAN = "DNS:localhost,IP:127.0.0.1"  # what make_ca's server certificate names
DAYS = "2"
KEYS = {
    "rsa": ["-newkey", "rsa:2048"],
    "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
}


def _openssl(folder, *args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)


def _ca(d, name, cn, key, der):
    _openssl(d, "req", "-x509", *KEYS[key], "-nodes", "-days", DAYS, "-keyout", f"{name}.key",
             "-out", f"{name}.pem", "-subj", f"/CN={cn}")  # fmt: skip
    if der:
        _openssl(d, "x509", "-in", f"{name}.pem", "-outform", "der", "-out", f"{name}.der")


def make_ca(tmp, name="ca", cn="hanport test CA", key="rsa", der=False, other_ca=None):
    """The folder tmp/name: a CA named cn and a server certificate it signs for SAN (keys
    of type key); der: the CA in DER too; other_ca: the common name of a second CA, made
    beside it (other_ca.*), the same way."""
    d = Path(tmp) / name
    d.mkdir(parents=True, exist_ok=True)
    _ca(d, "ca", cn, key, der)
    if other_ca:
        _ca(d, "other_ca", other_ca, key, der)
    return server_cert(d, d, key=key)


def server_cert(ca, folder, san=SAN, start=None, end=None, cn="localhost", key="rsa"):
    """folder, made if need be: a copy of the make_ca folder ca's ca.pem, and a server
    certificate (server.pem, server.key, a key of type key) that its CA signs for the
    subjectAltName san and common name cn, valid from start to end (openssl's
    YYYYMMDDHHMMSSZ; default from now for two days). `openssl ca` takes explicit dates on
    OpenSSL 3.0, which Debian 12 ships (`x509 -req -not_before` came in 3.4)."""
    ca, d = Path(ca), Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    if ca.resolve() != d.resolve():
        shutil.copy(ca / "ca.pem", d / "ca.pem")
    (d / "index.txt").write_text("")
    (d / "serial").write_text(secrets.token_hex(8).upper() + "\n")  # one of its own
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca = here\n"
        "[here]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        f"default_md = sha256\npolicy = any\nunique_subject = no\ndefault_days = {DAYS}\n"
        "[any]\ncommonName = supplied\n"
        f"[ext]\nsubjectAltName = {san}\n"
    )
    _openssl(d, "req", *KEYS[key], "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/CN={cn}")  # fmt: skip
    dates = ["-startdate", start, "-enddate", end] if start else []
    _openssl(d, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile",
             str(ca.resolve() / "ca.key"), "-in", "server.csr", "-out", "server.pem", "-notext",
             "-extensions", "ext", *dates)  # fmt: skip
    return d
