"""``mailsrv init``: a first configuration file and data dir for a new host.

The file it writes is short on purpose: the hostname, the local domains,
the data dir and the production listeners (25, 587, 465, 110, 995, 143,
993); with an ACME contact address also the certificate from Let's Encrypt
(``[tls] acme``) and the HTTP listeners it needs (80 for the HTTP-01
challenge, 443 for autoconfig and the MTA-STS policy, which its
certificate names); every other key keeps its default, and
``etc/mailsrv.toml`` lists them.  :func:`next_steps` is what the admin
does after it, in order, so that the first day needs nothing but what
``mailsrv`` prints.  It is loaded with the server's own loader before it is put in
place, so a bad hostname or domain is refused naming the key, and it is
linked into place only if no file is there: an existing configuration is
never overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

from mailsrv.address import canonical_domain
from mailsrv.config import Config, ConfigError, load
from mailsrv.ops.common import OpsError

#: The listeners of a server on the internet (the embedded defaults are loopback ports).
PRODUCTION_PORTS = (("smtp", 25), ("submission", 587), ("submissions", 465), ("pop3", 110), ("pop3s", 995),
                    ("imap", 143), ("imaps", 993))
DEFAULT_DATA_DIR = "/var/lib/mailsrv"
#: Let's Encrypt's production ACME directory (RFC 8555 7.1.1).
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


@dataclasses.dataclass(frozen=True)
class Setup:
    """What ``init`` asks for."""

    hostname: str
    domains: tuple[str, ...]
    data_dir: str
    #: Contact address for the ACME CA; ``""``: no ACME, the admin names a certificate in ``[tls]``.
    acme_email: str = ""


def default_domain(hostname: str) -> str:
    """The domain a host name suggests: ``mail.example.org`` serves ``example.org``."""
    parent = hostname.partition(".")[2]
    return parent if "." in parent else hostname


def config_text(setup: Setup) -> str:
    """The TOML file for *setup* (JSON strings are TOML basic strings)."""
    listen = "".join(f'{kind} = ["tcp:{port}"]\n' for kind, port in PRODUCTION_PORTS)
    tls = ""
    if setup.acme_email:
        listen += 'http = ["tcp:80"]     # the CA fetches its HTTP-01 challenge here\n'
        listen += 'https = ["tcp:443"]   # autoconfig, autodiscover, the MTA-STS policy\n'
        tls = ("\n[tls]\n# Let's Encrypt: by using it you agree to its terms of service.\nacme = true\n"
               f"acme_directory = {json.dumps(LETS_ENCRYPT)}\nacme_email = {json.dumps(setup.acme_email)}\n")
    return (
        "# Written by mailsrv init. Every other key, with its default: etc/mailsrv.toml in the source.\n"
        f"hostname = {json.dumps(setup.hostname)}\n"
        f"data_dir = {json.dumps(setup.data_dir)}\n"
        f"domains = [{', '.join(json.dumps(d) for d in setup.domains)}]\n"
        "\n[listen]\n" + listen + tls
    )


def next_steps(path: str, config: Config) -> list[str]:
    """What the admin does after ``init``, in order, as commands with the file just written."""
    command = f"mailsrv -c {path}"
    domain = config.domains[0]
    certificate = (f"the certificate is ordered from {config.tls.acme_directory} at the first start: the names "
                   f"dns records prints must resolve here and port 80 be open" if config.tls.acme else
                   "name a certificate for the hostname in [tls] cert and key (or run init again with "
                   "--acme-email for Let's Encrypt)")
    return [
        f"publish what `{command} dns records {domain}` prints in the DNS of {domain}",
        certificate,
        "start the server: etc/systemd/mailsrv.service (README.rst, \"Production in ten minutes\"), "
        f"or `twistd -n mailsrv --config {path}`",
        f"`{command} user add you@{domain}` and `{command} dkim keygen {domain}` (publish its record)",
        f"`{command} selftest`, then `{command} dns check {domain}` once the records are visible",
    ]


def write(path: str, setup: Setup) -> Config:
    """Write the configuration at *path* and make its data dir; the configuration as the server reads it.

    Refused (:class:`~mailsrv.ops.OpsError`) when *path* exists, when the data dir is
    not absolute, or when the loader refuses a value.
    """
    if os.path.lexists(path):
        raise OpsError(f"{path} exists already; it is not overwritten")
    if not os.path.isabs(setup.data_dir):
        raise OpsError(f"data_dir must be an absolute path, not {setup.data_dir!r}")
    if canonical_domain(setup.hostname) is None or "." not in setup.hostname:
        raise OpsError(f"hostname: {setup.hostname!r} is not a fully qualified host name")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        descriptor, draft = tempfile.mkstemp(prefix=".mailsrv-init-", suffix=".toml", dir=directory)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as f:
                f.write(config_text(setup))
            os.chmod(draft, 0o640)  # the server's group may read it, nobody else
            config = _checked(draft, path)
            os.makedirs(config.data_dir, mode=0o750, exist_ok=True)
            os.link(draft, path)  # fails if a file appeared meanwhile: never replaced
        finally:
            os.unlink(draft)
    except FileExistsError:
        raise OpsError(f"{path} exists already; it is not overwritten") from None
    except OSError as e:
        raise OpsError(f"{e.filename or path}: {e.strerror}") from None
    return config


def _checked(draft: str, path: str) -> Config:
    try:
        return dataclasses.replace(load(draft), source=path)
    except ConfigError as e:
        raise OpsError(str(e).replace(draft, path)) from None
