"""Alias operations: the entries of ``<data_dir>/aliases``.

An alias is ``name@domain`` or the catch-all ``@domain`` of a local
domain; its targets are local addresses or addresses on other servers,
which mail to the alias is forwarded to (with an SRS sender, see
:mod:`mailsrv.delivery.srs`).
"""

from __future__ import annotations

from typing import NamedTuple

from mailsrv.accounts import Directory, aliases
from mailsrv.config import Config
from mailsrv.ops.common import OpsError, change, plain_address, read, require_local


class AliasAdded(NamedTuple):
    """What :func:`add_alias` did."""

    #: The canonical alias (or ``@domain``).
    alias: str
    #: The targets given, canonical.
    targets: tuple[str, ...]
    #: Local targets that are neither a user nor an alias (nor reached by a catch-all)
    #: when the alias was added: mail to them is refused until one is made.
    unknown: tuple[str, ...]


def list_aliases(config: Config) -> list[tuple[str, tuple[str, ...]]]:
    """``(alias, targets)`` sorted by alias; unusable lines are logged as warnings."""
    return sorted(aliases.parse(read(config.aliases_file), config.aliases_file).items())


def add_alias(config: Config, alias: str, targets: list[str], create: bool = False) -> AliasAdded:
    """Add *targets* to *alias* (created if new); *create* makes a missing data dir.

    A target nobody receives mail for is added all the same (its user may
    be made next) but reported in :attr:`AliasAdded.unknown`, so a typo does
    not go unnoticed until the first bounce.
    """
    key = aliases.alias_key(alias)
    if key is None:
        raise OpsError(f"not an address or @domain: {alias!r}")
    require_local(config, key.rpartition("@")[2])
    directory = Directory(config)
    if directory.user_exists(key):
        raise OpsError(f"{key} is a user; an alias of the same name would never be used")
    canonical = [plain_address(target) for target in targets]
    unknown = tuple(
        target for target in canonical
        if target.rpartition("@")[2] in config.domains and not directory.resolve(target)
    )
    source = config.aliases_file
    change(config, source, aliases.DEFAULT_MODE, lambda text: aliases.add(text, key, canonical, source), create)
    return AliasAdded(key, tuple(canonical), unknown)


def remove_alias(config: Config, alias: str) -> str:
    """Remove *alias* with all its targets; returns the alias as looked up."""
    key = aliases.alias_key(alias) or alias
    change(config, config.aliases_file, aliases.DEFAULT_MODE, lambda text: aliases.remove(text, key))
    return key

