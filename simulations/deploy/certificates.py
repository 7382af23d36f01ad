"""TLS material of the demo, and the check that a SuperLink really uses TLS.

:func:`make_tls` makes a throw-away CA and a certificate for 127.0.0.1 and
localhost (valid for :data:`DEMO_CERT_DAYS` days unless told otherwise; the
CA's key is not kept), :func:`make_node_key` a SuperNode's key pair. Both use
the ``cryptography`` package. For a real deployment get the SuperLink's
certificate from your organisation's CA (see docs/deploying.md, "Real
certificates"). :func:`check_tls` shows that a SuperLink refuses plain text
and answers over TLS with a certificate the CA vouches for.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from simulations.deploy.common import HOST, DemoError

DEMO_CERT_DAYS = 2
"""Validity of the demo's certificates, in days."""
HEALTH = "/health"
"""The SuperLink's health endpoint (Flower 1.42), served on its one port."""


@dataclass(frozen=True)
class TlsFiles:
    """CA certificate and the SuperLink's certificate and key (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls(folder: Path, *, days: int = DEMO_CERT_DAYS) -> TlsFiles:
    """Make a CA and a server certificate for 127.0.0.1 and localhost.

    Parameters
    ----------
    folder : Path
        Where the PEM files are written.
    days : int
        How long both certificates are valid, from now (at least 1).

    Returns
    -------
    TlsFiles
        The paths of the CA certificate and the server certificate and key.

    Raises
    ------
    ValueError
        If ``days`` is not a positive integer.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FedUP demo CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.server_key.chmod(0o600)
    return files


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """Make a SuperNode key pair (P-384, OpenSSH format, as Flower expects).

    Returns
    -------
    tuple[Path, Path]
        The private key (for ``--auth-supernode-private-key``) and the public
        key (for ``flwr supernode register``).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = folder / name
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return private, public


def check_tls(host: str, port: int, ca_cert: Path, timeout: float = 10.0) -> str:
    """Show that the SuperLink at ``host:port`` speaks TLS only.

    A plain-text HTTP request to its health endpoint must get no HTTP answer,
    and the same request over TLS, verifying the server's certificate (and
    host name) with ``ca_cert``, must be answered with status 200.

    Parameters
    ----------
    host, port : str, int
        The SuperLink's address.
    ca_cert : Path
        The CA certificate the SuperNodes and the CLI trust.
    timeout : float
        Seconds to wait for each connection.

    Returns
    -------
    str
        What was seen, for the demo's output.

    Raises
    ------
    DemoError
        If the plain-text request is answered, or the TLS one fails.
    """
    plain = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        plain.request("GET", HEALTH)
        status = plain.getresponse().status
    except (OSError, http.client.HTTPException) as err:
        refusal = type(err).__name__
    else:
        raise DemoError(
            f"{host}:{port} answered a plain-text HTTP request (status {status}): "
            "TLS is off"
        )
    finally:
        plain.close()
    context = ssl.create_default_context(cafile=str(ca_cert))
    secure = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        secure.request("GET", HEALTH)
        sock = secure.sock  # closed once a response without keep-alive is read
        version = sock.version() if isinstance(sock, ssl.SSLSocket) else "TLS"
        status = secure.getresponse().status
    except (OSError, http.client.HTTPException) as err:
        raise DemoError(
            f"{host}:{port} failed over TLS with the CA {ca_cert}: "
            f"{type(err).__name__}: {err}"
        ) from None
    finally:
        secure.close()
    if status != 200:
        raise DemoError(f"{host}:{port} answered {HEALTH} over TLS with {status}")
    return (
        f"TLS on: a plain-text connection to the SuperLink was refused "
        f"({refusal}); over {version} with its certificate verified by the CA, "
        f"{HEALTH} answered {status}"
    )
