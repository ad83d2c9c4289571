"""The shipped systemd unit (``etc/systemd/mailsrv.service``) read as systemd reads it, for the tests."""

from __future__ import annotations

import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
UNIT = os.path.join(REPO, "etc", "systemd", "mailsrv.service")


def read_unit(path: str = UNIT) -> dict[str, dict[str, list[str]]]:
    """The unit as systemd reads it: per section, each key's values in order (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            assert not line.endswith("\\"), f"line {number}: keep each setting on one line"
            if line.startswith("["):
                assert line.endswith("]"), f"line {number}: {line}"
                current = sections.setdefault(line[1:-1], {})
                continue
            key, eq, value = line.partition("=")
            assert eq and current is not None and re.fullmatch(r"[A-Za-z]+", key), f"line {number}: {line}"
            current.setdefault(key, []).append(value)
    return sections
