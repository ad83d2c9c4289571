"""The two texts of MTA-STS, parsed: the ``_mta-sts`` TXT record and the policy file (RFC 8461 3).

Both parsers are strict where the RFC says a sender must be (a record or
policy that does not parse means "no policy") and lenient where it says so
too: unknown fields are ignored, and of a repeated field other than ``mx``
the first counts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: RFC 8461 3.2: the longest max_age a policy may ask for (about a year).
MAX_AGE_LIMIT = 31557600

_FIELD_DELIM = re.compile(r"[ \t]*;[ \t]*")
_VERSION = re.compile(r"v=STSv1[ \t]*;")
_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+\Z")
_POLICY_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(?:\.{_LABEL})*\Z")


class PolicyError(ValueError):
    """The text is not a valid MTA-STS record or policy; the sender acts as if there were none."""


class Mode(enum.Enum):
    """RFC 8461 5: what a sender does with the policy."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Policy:
    """A parsed policy file."""

    mode: Mode
    #: The MX patterns, lower case: ``mx.example.com`` or ``*.example.com``.
    mx: tuple[str, ...]
    #: Seconds the policy may be cached, at most :data:`MAX_AGE_LIMIT`.
    max_age: int

    def allows(self, host: str) -> bool:
        """Whether the MX host *host* matches one of the patterns (RFC 8461 4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: *host* matches *pattern*, a name or ``*.`` and a name standing for one whole label.

    Names compare case-insensitively, a final dot ignored; ``*.example.com``
    matches ``mail.example.com`` but neither ``example.com`` nor
    ``foo.bar.example.com``.
    """
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return host == pattern
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == pattern[2:]


def record_id(records: Iterable[str]) -> str:
    """The ``id`` of the one ``v=STSv1`` record among the TXT *records* (each its strings joined).

    RFC 8461 3.1: records not starting ``v=STSv1;`` are discarded; not
    exactly one left, or one that does not parse, raises :class:`PolicyError`.
    """
    candidates = [r for r in records if _VERSION.match(r)]
    if len(candidates) != 1:
        raise PolicyError(f"{len(candidates)} v=STSv1 TXT records (RFC 8461 3.1 wants exactly one)")
    fields = _FIELD_DELIM.split(candidates[0])
    if fields[-1] == "":  # the optional delimiter at the end
        fields.pop()
    ids = []
    for field in fields[1:]:
        name, equals, value = field.partition("=")
        if not equals or not _EXT_NAME.match(name) or not _EXT_VALUE.match(value):
            raise PolicyError(f"bad field {field!r} in the TXT record")
        if name == "id":
            if not _ID.match(value):
                raise PolicyError(f"bad id {value!r} in the TXT record (1 to 32 letters and digits)")
            ids.append(value)
    if not ids:
        raise PolicyError("the TXT record has no id")
    return ids[0]


def parse_policy(text: str) -> Policy:
    """The policy file *text* (RFC 8461 3.2); :class:`PolicyError` says what is wrong.

    Lines end in LF or CRLF.  ``version`` must be ``STSv1``; ``mode``,
    ``max_age`` and (unless the mode is ``none``) at least one ``mx`` must
    be there.
    """
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        match = _POLICY_LINE.match(line)
        if match is None:
            raise PolicyError(f"bad line {line[:80]!r} in the policy")
        key, value = match.groups()
        if key == "mx":
            if not _MX_PATTERN.match(value):
                raise PolicyError(f"bad mx pattern {value[:80]!r}")
            mx.append(value.lower())
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("the policy's version is not STSv1")
    try:
        mode = Mode(fields.get("mode", ""))
    except ValueError:
        raise PolicyError(f"the policy's mode {fields.get('mode')!r} is not enforce, testing or none") from None
    max_age = fields.get("max_age", "")
    if not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        raise PolicyError(f"the policy's max_age {max_age!r} is not a number of seconds")
    if not mx and mode is not Mode.NONE:
        raise PolicyError("the policy names no mx")
    return Policy(mode, tuple(mx), min(int(max_age), MAX_AGE_LIMIT))
