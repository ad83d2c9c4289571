"""Alias operations: the entries of ``<data_dir>/aliases``.

An alias is ``name@domain`` or the catch-all ``@domain`` of a local
domain; its targets are local addresses, because remote forwarding does
not exist yet and an alias that silently never delivers is worse than a
refusal now.
"""

from __future__ import annotations

from mailsrv.accounts import aliases, users
from mailsrv.config import Config
from mailsrv.ops.common import OpsError, change, plain_address, read, require_local


def list_aliases(config: Config) -> list[tuple[str, tuple[str, ...]]]:
    """``(alias, targets)`` sorted by alias; unusable lines are logged as warnings."""
    return sorted(aliases.parse(read(config.aliases_file), config.aliases_file).items())


def add_alias(config: Config, alias: str, targets: list[str]) -> str:
    """Add *targets* to *alias* (created if new); returns the canonical alias."""
    key = aliases.alias_key(alias)
    if key is None:
        raise OpsError(f"not an address or @domain: {alias!r}")
    require_local(config, key.rpartition("@")[2])
    if key in users.parse(read(config.users_file), config.users_file):
        raise OpsError(f"{key} is a user; an alias of the same name would never be used")
    canonical = [plain_address(target) for target in targets]
    for target in canonical:
        _require_local_target(config, target)
    source = config.aliases_file
    change(config, source, aliases.DEFAULT_MODE, lambda text: aliases.add(text, key, canonical, source))
    return key


def remove_alias(config: Config, alias: str) -> str:
    """Remove *alias* with all its targets; returns the alias as looked up."""
    key = aliases.alias_key(alias) or alias
    change(config, config.aliases_file, aliases.DEFAULT_MODE, lambda text: aliases.remove(text, key))
    return key


def _require_local_target(config: Config, target: str) -> None:
    """Refuse an alias target in another domain.

    The directory drops such targets (remote forwarding does not exist
    yet), so mail to the alias would be refused with "User unknown";
    saying so now beats an alias that silently never delivers.
    """
    if target.rpartition("@")[2] not in config.domains:
        raise OpsError(
            f"cannot forward to {target}: remote delivery is not supported yet, "
            f"targets must be in a local domain ({', '.join(config.domains)})"
        )
