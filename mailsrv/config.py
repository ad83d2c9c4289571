"""Configuration: one TOML file read into frozen dataclasses.

Every key has an embedded default so that ``twistd -n mailsrv`` with no
file at all serves on unprivileged loopback ports.  Any mistake in a file
(unknown key, wrong type, missing certificate) raises :class:`ConfigError`
whose message names the file and the dotted key, because a mail admin
reading a start-up failure must know exactly which line to fix.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

#: The kinds of listener, and whether each wraps its endpoint in TLS itself.
IMPLICIT_TLS_KINDS = frozenset({"submissions", "pop3s", "imaps"})
LISTENER_KINDS = (
    "smtp",
    "submission",
    "submissions",
    "pop3",
    "pop3s",
    "imap",
    "imaps",
)


class ConfigError(Exception):
    """A configuration mistake, already phrased for the admin."""


@dataclass(frozen=True)
class ListenConfig:
    """Twisted server endpoint strings per listener kind; ``[]`` disables it."""

    smtp: tuple[str, ...] = ("tcp:2525:interface=127.0.0.1",)
    submission: tuple[str, ...] = ("tcp:2587:interface=127.0.0.1",)
    submissions: tuple[str, ...] = ("tcp:2465:interface=127.0.0.1",)
    pop3: tuple[str, ...] = ("tcp:2110:interface=127.0.0.1",)
    pop3s: tuple[str, ...] = ("tcp:2995:interface=127.0.0.1",)
    imap: tuple[str, ...] = ("tcp:2143:interface=127.0.0.1",)
    imaps: tuple[str, ...] = ("tcp:2993:interface=127.0.0.1",)
    backlog: int = 1024


@dataclass(frozen=True)
class TLSConfig:
    """Certificate and key files; both empty means a generated self-signed pair."""

    cert: str = ""
    key: str = ""
    min_version: str = "1.2"


@dataclass(frozen=True)
class LimitsConfig:
    """Protocol limits; each protects the server from one kind of abuse."""

    max_message_size: int = 50 * 1024 * 1024
    max_line_length: int = 16 * 1024
    max_recipients: int = 100
    max_command_errors: int = 20
    smtp_timeout: int = 300
    imap_max_line_length: int = 64 * 1024
    imap_max_literal_size: int = 50 * 1024 * 1024
    pop3_timeout: int = 600


@dataclass(frozen=True)
class AuthConfig:
    """Authentication policy."""

    allow_plaintext_auth_on_loopback: bool = False
    cache_seconds: int = 60


@dataclass(frozen=True)
class Config:
    """The whole server configuration."""

    hostname: str = "localhost"
    data_dir: str = "mailsrv-data"
    domains: tuple[str, ...] = ("example.test",)
    listen: ListenConfig = field(default_factory=ListenConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    source: str = "<defaults>"

    @property
    def mail_dir(self) -> str:
        """Root of the Maildir tree: ``<data_dir>/mail``."""
        return os.path.join(self.data_dir, "mail")

    @property
    def users_file(self) -> str:
        """The passwd-file style user database."""
        return os.path.join(self.data_dir, "users")

    @property
    def aliases_file(self) -> str:
        """The alias map."""
        return os.path.join(self.data_dir, "aliases")


def _convert(value: Any, hint: Any, where: str, source: str) -> Any:
    """Check *value* against the annotation *hint*, converting lists to tuples."""
    if hint in ("bool", bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, got {value!r}")
        return value
    if hint in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{source}: {where}: expected a non-negative integer, got {value!r}")
        return value
    if hint in ("str", str):
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}: expected a string, got {value!r}")
        return value
    if hint in ("tuple[str, ...]",) or getattr(hint, "__origin__", None) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unhandled config type {hint!r}")  # pragma: no cover


def _build(cls: type, table: dict[str, Any], prefix: str, source: str) -> Any:
    """Build dataclass *cls* from a TOML table, naming the key on any error."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{source}: {where}: unknown key")
        hint = hints[key]
        if is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where}: expected a table [{where}]")
            kwargs[key] = _build(hint, value, where + ".", source)
        else:
            kwargs[key] = _convert(value, hint, where, source)
    return cls(**kwargs)


def _validate(config: Config) -> None:
    """Cross-key checks that a type alone cannot express."""
    src = config.source
    if not config.hostname:
        raise ConfigError(f"{src}: hostname: must not be empty")
    if not config.domains:
        raise ConfigError(f"{src}: domains: at least one local domain is needed")
    if config.tls.min_version not in ("1.2", "1.3"):
        raise ConfigError(f"{src}: tls.min_version: must be \"1.2\" or \"1.3\"")
    if bool(config.tls.cert) != bool(config.tls.key):
        missing = "tls.key" if config.tls.cert else "tls.cert"
        raise ConfigError(f"{src}: {missing}: tls.cert and tls.key are set together")
    for key in ("cert", "key"):
        path = getattr(config.tls, key)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{src}: tls.{key}: file not found: {path}")
    if config.limits.max_message_size < 1024:
        raise ConfigError(f"{src}: limits.max_message_size: must be at least 1024")
    if config.limits.max_line_length < 1000:
        raise ConfigError(f"{src}: limits.max_line_length: must be at least 1000 (RFC 5321 4.5.3.1.6)")


def load(path: str | None = None, **overrides: Any) -> Config:
    """Read *path* (TOML) over the defaults; ``None`` gives the defaults.

    *overrides* replace top-level keys after reading (used by command-line
    options such as ``--data-dir``).
    """
    table: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = path
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    config = _build(Config, table, "", source)
    values = {f.name: getattr(config, f.name) for f in fields(Config)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["source"] = source
    values["domains"] = tuple(d.lower().rstrip(".") for d in values["domains"])
    config = Config(**values)
    _validate(config)
    return config
