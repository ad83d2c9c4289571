"""Configuration: one TOML file read into frozen dataclasses, one per table.

Every key has an embedded default so that ``twistd -n mailsrv`` with no
file at all serves on unprivileged loopback ports.  Any mistake in a file
(unknown key, wrong type, missing certificate) raises :class:`ConfigError`
whose message names the file and the dotted key.  Modules:

* :mod:`.schema` -- how a key is declared (default, doc, check);
* :mod:`.loader` -- :func:`locate` (which file the server and the CLI read)
  and :func:`load`, generic over the declarations;
* :mod:`.server` -- the top-level keys and :class:`Config`;
* :mod:`.listen`, :mod:`.tls`, :mod:`.limits`, :mod:`.auth`,
  :mod:`.submission`, :mod:`.policy`, :mod:`.spam`, :mod:`.imap`, :mod:`.threads`, :mod:`.dns`, :mod:`.delivery`,
  :mod:`.warmup`, :mod:`.mtastspolicy`, :mod:`.http`, :mod:`.log` -- one module per ``[table]``;
* :mod:`.example` -- ``etc/mailsrv.toml`` rendered from the declarations;
* :mod:`.changes` -- what a file re-read on SIGHUP changes, and which keys take a restart;
* :mod:`.live` -- the configuration in force, which SIGHUP replaces.
"""

from mailsrv.config.auth import AuthConfig
from mailsrv.config.delivery import DeliveryConfig
from mailsrv.config.dns import DNSConfig
from mailsrv.config.http import HTTPConfig
from mailsrv.config.imap import IMAPConfig
from mailsrv.config.quota import QuotaConfig
from mailsrv.config.limits import LimitsConfig
from mailsrv.config.listen import ListenConfig
from mailsrv.config.loader import CONFIG_ENV, SYSTEM_CONFIG, load, locate
from mailsrv.config.log import LogConfig
from mailsrv.config.schema import ConfigError
from mailsrv.config.server import Config
from mailsrv.config.policy import PolicyConfig
from mailsrv.config.spam import SpamConfig
from mailsrv.config.submission import SubmissionConfig
from mailsrv.config.threads import ThreadsConfig
from mailsrv.config.tls import TLSConfig
from mailsrv.config.warmup import WarmupConfig

__all__ = [
    "AuthConfig",
    "CONFIG_ENV",
    "Config",
    "ConfigError",
    "DNSConfig",
    "DeliveryConfig",
    "HTTPConfig",
    "IMAPConfig",
    "PolicyConfig",
    "QuotaConfig",
    "LimitsConfig",
    "ListenConfig",
    "LogConfig",
    "SYSTEM_CONFIG",
    "SpamConfig",
    "SubmissionConfig",
    "TLSConfig",
    "ThreadsConfig",
    "WarmupConfig",
    "load",
    "locate",
]
