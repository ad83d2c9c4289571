"""How a configuration table is declared: settings with a default, a doc and a check.

Every key of the TOML file is a field of a frozen dataclass (one dataclass
per table), declared with :func:`setting` or :func:`table`.  The field
carries all there is to know about the key: its type (the annotation), its
default, the one line that documents it (``etc/mailsrv.toml`` is rendered
from these lines, so the file cannot drift from the code) and an optional
check.  The loader (:mod:`.loader`) is generic over these declarations.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

from mailsrv.address import canonical_domain

#: A check takes the value read from the file (already of the right type)
#: and returns the value to use; it raises :class:`Invalid` to refuse it.
Check = Callable[[Any], Any]

_DOC_KEY = "doc"
_CHECK_KEY = "check"
_ENTRY_KEY = "entry"
_RESTART_KEY = "restart"


class ConfigError(Exception):
    """A configuration mistake, already phrased for the admin."""


class Invalid(ValueError):
    """A value of the right type that cannot be used; the loader adds the file and the key.

    *key* names another key of the same table, for a rule about two keys
    (:meth:`Table.check`); ``None`` means the key being read.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Table:
    """Base of every table's dataclass."""

    #: The admin's introduction to the table, shown above it in ``etc/mailsrv.toml``.
    DOC = ""
    #: For the entries of a :func:`mapping`: lines the documented file shows as an example.
    EXAMPLE: tuple[str, ...] = ()

    def check(self) -> None:
        """Rules about several keys of the table, run after the table is read; none by default.

        A broken rule raises :class:`Invalid` with ``key`` set to the key the
        admin should fix, which the loader names in the message.
        """


TableT = TypeVar("TableT", bound=Table)


def setting(default: Any, doc: str, check: Check | None = None, restart: bool = False) -> Any:
    """A key of a table: its *default*, one line of *doc* for the admin, an optional *check*.

    *restart*: the running server cannot take a new value (a listener is
    bound, a pool is sized, the value is built into long-lived objects), so
    SIGHUP keeps the one it started with and says so (:mod:`.changes`).
    """
    return dataclasses.field(default=default, metadata={_DOC_KEY: doc, _CHECK_KEY: check, _RESTART_KEY: restart})


def table(cls: type[TableT], restart: bool = False) -> TableT:
    """A sub-table (``[name]``) whose keys are the fields of *cls*, introduced by ``cls.DOC``;
    *restart* makes every key of it one that takes a restart (see :func:`setting`)."""
    return dataclasses.field(default_factory=cls, metadata={_DOC_KEY: cls.DOC, _CHECK_KEY: None,
                                                            _RESTART_KEY: restart})


def mapping(cls: type[TableT], doc: str, key: Check, restart: bool = False) -> "Mapping[str, TableT]":
    """A sub-table of named entries (``[name]`` with ``"key" = { ... }`` lines), each a *cls*.

    The admin picks the names (recipient domains, say), so they are not
    fields: *key* checks each one and returns it in canonical form (raising
    :class:`Invalid`), and each value is read as a table of *cls*'s keys.
    Empty by default; read-only once loaded.  *restart*: as for :func:`setting`.
    """
    return dataclasses.field(
        default_factory=lambda: MappingProxyType({}),
        metadata={_DOC_KEY: doc, _CHECK_KEY: key, _ENTRY_KEY: cls, _RESTART_KEY: restart},
    )


def entry_table(field: dataclasses.Field) -> type | None:
    """The table class of each entry of a :func:`mapping` field; ``None`` for any other field."""
    return field.metadata.get(_ENTRY_KEY)


def settings(cls: type) -> list[dataclasses.Field]:
    """The fields of *cls* that are keys of the file (others, such as ``source``, are not)."""
    return [f for f in dataclasses.fields(cls) if _DOC_KEY in f.metadata]


def doc(field: dataclasses.Field) -> str:
    """The admin's line about *field*."""
    return field.metadata[_DOC_KEY]


def needs_restart(field: dataclasses.Field) -> bool:
    """Whether a new value of *field* takes effect only after a restart (see :func:`setting`)."""
    return field.metadata[_RESTART_KEY]


def default(field: dataclasses.Field) -> Any:
    """The value *field* has when the file leaves it out."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def checked(field: dataclasses.Field, value: Any) -> Any:
    """Run *field*'s check on *value*; the value to use."""
    checker: Check | None = field.metadata[_CHECK_KEY]
    return value if checker is None else checker(value)


def at_least(minimum: int, reason: str = "") -> Check:
    """A check refusing integers below *minimum*; *reason* (an RFC, say) is added to the message."""
    because = f" ({reason})" if reason else ""

    def at_least_minimum(value: int) -> int:
        if value < minimum:
            raise Invalid(f"must be at least {minimum}{because}")
        return value

    return at_least_minimum


def one_of(choices: tuple[str, ...]) -> Check:
    """A check refusing any string but one of *choices*."""

    def one_of_choices(value: str) -> str:
        if value not in choices:
            raise Invalid(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return one_of_choices


def every(parse: Callable[[str], Any], what: str) -> Check:
    """A check of a list: each entry must be something *parse* takes (it raises ValueError otherwise).

    The message says which entry and that it is not *what* (``an IPv4 or IPv6 address``).
    """

    def every_entry(values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                parse(value)
            except ValueError:
                raise Invalid(f"{value!r} is not {what}") from None
        return values

    return every_entry


def domain_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """*names* in canonical form (:func:`mailsrv.address.canonical_domain`); :class:`Invalid` names a non-domain."""
    canonical = []
    for name in names:
        domain = canonical_domain(name)
        if domain is None:
            raise Invalid(f"{name!r} is not a domain name")
        canonical.append(domain)
    return tuple(canonical)
