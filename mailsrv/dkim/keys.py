"""DKIM keys on disk: making them, the DNS record to publish, and reading them while the server runs.

A key is one file, ``<data_dir>/dkim/<domain>/<selector>.key``: a PEM
private key (PKCS#1 for RSA, PKCS#8 for Ed25519), mode 0600.  The selector
is the file name, so ``ls`` shows what is published; the public half is
derived from it whenever the record is wanted, so there is nothing to keep
in step.  A key file is written once (temp file, fsync, hard link: it never
replaces an existing selector, which would break the signatures of mail
still in transit) and never edited, so a directory whose
:class:`~mailsrv.store.files.FileStamp` did not move holds the same keys.

Everything here blocks on the disk or the CPU (RSA key generation takes a
good fraction of a second): the server calls it in a worker pool.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.logger import Logger

from mailsrv.store.files import FileStamp, fsync_dir

log = Logger()

#: RSA modulus size of new keys (RFC 8301 3.2: at least 1024, 2048 recommended).
RSA_BITS = 2048
#: The longest character-string of a TXT record (RFC 1035 3.3).
TXT_STRING_MAX = 255
#: A selector is one DNS label of letters, digits and hyphens (RFC 6376 3.1 allows dotted
#: sub-domains; one label keeps the file name flat).
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_SUFFIX = ".key"


class Algorithm(enum.Enum):
    """The key types DKIM knows (RFC 6376 3.3, RFC 8463), by their ``k=`` tag."""

    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def signing(self) -> bytes:
        """The ``a=`` value of signatures made with this key type."""
        return b"rsa-sha256" if self is Algorithm.RSA else b"ed25519-sha256"


def dkim_dir(data_dir: str) -> str:
    """Where the keys of every domain live: ``<data_dir>/dkim``."""
    return os.path.join(data_dir, "dkim")


def default_selector(now: datetime | None = None) -> str:
    """``mailsrvYYYYMM``: dated, so the key made at the next rotation gets a name of its own."""
    return f"mailsrv{(now or datetime.now(timezone.utc)):%Y%m}"


def selector_problem(selector: str) -> str | None:
    """Why *selector* cannot name a key, or ``None``."""
    if not _SELECTOR.match(selector):
        return "a selector is one DNS label: lower-case letters, digits and inner hyphens, at most 63"
    return None


@dataclass(frozen=True)
class Key:
    """One private key of one domain, as read from its file."""

    domain: str
    selector: str
    algorithm: Algorithm
    #: The private key in the form dkimpy takes (PEM for RSA, the base64 seed for Ed25519).
    private: bytes
    #: The ``p=`` value: the public key, base64.
    public: str
    #: When the file was written: the newest key's signature goes on top.
    created_ns: int

    @property
    def record(self) -> str:
        """The TXT record to publish, one line of zone-file syntax."""
        return txt_record(self.selector, self.domain, self.algorithm, self.public)


def txt_record(selector: str, domain: str, algorithm: Algorithm, public: str) -> str:
    """``S._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=..."`` (RFC 6376 3.6.2.2).

    A TXT record is a sequence of strings of at most 255 octets each, which
    the verifier concatenates (RFC 6376 3.6.2.2): an RSA-2048 value is
    longer, so it is cut into several quoted strings.
    """
    value = f"v=DKIM1; k={algorithm.value}; p={public}"
    strings = " ".join(f'"{value[i:i + TXT_STRING_MAX]}"' for i in range(0, len(value), TXT_STRING_MAX))
    return f"{selector}._domainkey.{domain}. IN TXT {strings}"


def generate(algorithm: Algorithm) -> bytes:
    """A new private key, PEM."""
    if algorithm is Algorithm.RSA:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        # PKCS#1 ("RSA PRIVATE KEY"): the one PEM form dkimpy parses.
        return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load(pem: bytes, domain: str, selector: str, created_ns: int = 0) -> Key:
    """The :class:`Key` a file holds; ``ValueError`` when it is no RSA or Ed25519 private key."""
    private = serialization.load_pem_private_key(pem, password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return Key(domain, selector, Algorithm.RSA, pem, base64.b64encode(public_der).decode("ascii"), created_ns)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        # RFC 8463 4.2: p= is the raw 32-octet public key; dkimpy signs with the raw seed.
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Key(domain, selector, Algorithm.ED25519, base64.b64encode(seed),
                   base64.b64encode(raw_public).decode("ascii"), created_ns)
    raise ValueError("not an RSA or Ed25519 private key")


def write_new(directory: str, selector: str, pem: bytes) -> str:
    """Write *pem* as ``<directory>/<selector>.key``, mode 0600; ``FileExistsError`` if it exists.

    Written to a temp file, fsynced, then hard-linked to its name, which
    fails rather than replace an existing key; a crash leaves either no key
    or the whole key, and at worst a temp file (``.*.tmp``, never read).
    Directories made here get the owner of the data dir above them, so a
    key the admin made as root stays readable to the server's own user.
    """
    _make_dirs(directory)
    path = os.path.join(directory, selector + _SUFFIX)
    owner = os.stat(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{selector}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fchmod(f.fileno(), 0o600)
            if (owner.st_uid, owner.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), owner.st_uid, owner.st_gid)
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(directory)
    return path


def _make_dirs(directory: str) -> None:
    """Make *directory* and its missing parents private, owned like the first existing ancestor."""
    missing = []
    path = directory
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    owner = os.stat(path)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        if (owner.st_uid, owner.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(PermissionError):
                os.chown(path, owner.st_uid, owner.st_gid)


def hand_over(root: str, uid: int, gid: int) -> None:
    """Give every key directory and file under *root* to *uid*:*gid* (root starting the server for them).

    Keys made with ``mailsrv dkim keygen`` as root before the first start
    would otherwise stay unreadable to the server once twistd dropped to
    its own user.
    """
    for directory, _, names in os.walk(root):
        os.chown(directory, uid, gid)
        for name in names:
            os.chown(os.path.join(directory, name), uid, gid)


def read_domain(directory: str, domain: str) -> list[Key]:
    """Every usable key in one domain's *directory*, oldest first; unusable files are logged."""
    keys = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:  # removed since its stamp was taken
        return []
    for name in names:
        selector = name.removesuffix(_SUFFIX)
        if name.startswith(".") or not name.endswith(_SUFFIX) or selector_problem(selector):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                keys.append(load(f.read(), domain, selector, os.fstat(f.fileno()).st_mtime_ns))
        except (OSError, ValueError) as e:
            log.error("DKIM key {path} not usable: {error}", path=path, error=getattr(e, "strerror", None) or e)
    return sorted(keys, key=lambda k: (k.created_ns, k.selector))


class KeyRing:
    """The keys under ``<data_dir>/dkim``, re-read for a domain whenever its directory changes.

    A lookup costs one ``stat`` of the domain's directory when nothing
    changed: adding a key (a new directory entry) moves its stamp, so
    ``mailsrv dkim keygen`` takes effect on the next message, without a
    restart or a signal.  Lookups block; they run in the signing pool,
    several at a time, hence the lock.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[FileStamp | None, list[Key]]] = {}

    def keys(self, domain: str) -> list[Key]:
        """The usable keys of *domain* (canonical), oldest first.

        A directory that cannot be read is an error line, and the keys read
        last time stay (none, for a directory never read).
        """
        directory = os.path.join(self.root, domain)
        with self._lock:
            cached = self._cache.get(domain)
        try:
            stamp = FileStamp.of(directory)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            keys = read_domain(directory, domain) if stamp is not None else []
        except OSError as e:
            log.error("DKIM keys of {domain} not read: {path}: {error}", domain=domain, path=directory,
                      error=e.strerror)
            return cached[1] if cached is not None else []
        with self._lock:
            self._cache[domain] = (stamp, keys)
        return keys

    def forget(self) -> None:
        """Read every domain's keys again at its next lookup (SIGHUP): a key file rewritten in place
        does not move its directory's stamp."""
        with self._lock:
            self._cache.clear()

    def signing(self, domain: str) -> list[Key]:
        """The keys mail from *domain* is signed with: every one, newest first.

        Every key, so that a rotation is safe at each step: a new key signs
        from the moment it is made, and the old one goes on signing until
        its file is removed, so whichever record a receiver sees verifies.
        Newest first, because a verifier that checks only one signature
        checks the top one, and the newest key is the one meant to stay.
        An RSA key beside an Ed25519 one matters too: a receiver ignores a
        signature whose algorithm it does not know (RFC 6376 6.1.1), and
        many know no Ed25519 yet (RFC 8463).
        """
        return self.keys(domain)[::-1]

    def domains(self) -> list[str]:
        """The domains that have a key directory, sorted."""
        try:
            return sorted(name for name in os.listdir(self.root) if not name.startswith("."))
        except FileNotFoundError:
            return []
