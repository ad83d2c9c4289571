"""The documentation stays true to the code.

* every module path ``docs/internals.rst`` (or a file path docs/twisted-notes.rst)
  names exists;
* ``docs/rfc-support.rst`` has a row for every RFC the code cites, and the
  code cites every RFC the table calls supported;
* nothing in the repository points at notes a clone does not have;
* every ``docs/twisted-notes.rst, "<heading>"`` citation names a real section.

Each test lists every offending item, so one run shows all that is wrong.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
THIS_FILE = Path(__file__).resolve()

#: Adornment line of a reStructuredText section title.
_ADORNMENT = re.compile(r"""([=\-~^"'`#*+:.])\1+\Z""")


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if p.resolve() != THIS_FILE)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def section_titles(rst: str) -> list[str]:
    """Section titles of a reStructuredText document (underlined, optionally overlined)."""
    lines = rst.splitlines()
    return [
        title.strip()
        for title, below in zip(lines, lines[1:])
        if title.strip() and not title[0].isspace() and not _ADORNMENT.match(title.strip())
        and _ADORNMENT.match(below) and len(below) >= len(title.strip())
    ]


# -- (a) docs/internals.rst names only what exists ----------------------------------


def _literal_text(rst: str) -> list[str]:
    """Inline literals (````...````) and literal blocks (after ``::``) of *rst*."""
    pieces = re.findall(r"``([^`]+)``", rst)
    block: list[str] | None = None
    for line in rst.splitlines():
        if block is not None:
            if line.strip() and not line.startswith((" ", "\t")):
                pieces.append("\n".join(block))
                block = None
            else:
                block.append(line)
                continue
        if line.rstrip().endswith("::"):
            block = []
    if block:
        pieces.append("\n".join(block))
    return pieces


def internals_names() -> tuple[set[str], set[str]]:
    """Dotted names (``mailsrv.x.y``) and file paths (``mailsrv/x/y.py``) in docs/internals.rst."""
    dotted: set[str] = set()
    paths: set[str] = set()
    for piece in _literal_text((DOCS / "internals.rst").read_text(encoding="utf-8")):
        dotted.update(re.findall(r"(?<![\w./-])mailsrv(?:\.[A-Za-z_]\w*)+", piece))
        paths.update(re.findall(r"(?<![\w./-])mailsrv/(?:[\w-]+/)*(?:[\w-]+\.py)?", piece))
    return dotted, paths


def resolves(name: str) -> bool:
    """Whether *name* is an importable module, or an attribute reached from one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not module_name.startswith(e.name):
                raise  # the module exists but one of its own imports is missing
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_internals_names_some_modules():
    # Guards the scan itself: if the patterns stopped matching, the next tests would pass vacuously.
    dotted, paths = internals_names()
    assert "mailsrv.net.session.Session.may_send_password" in dotted
    assert "mailsrv/tap.py" in paths


def test_every_dotted_name_in_internals_imports():
    dotted, _ = internals_names()
    missing = sorted(name for name in dotted if not resolves(name))
    assert not missing, "docs/internals.rst names what does not exist:\n" + "\n".join(missing)


def test_every_file_path_in_internals_exists():
    _, paths = internals_names()
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, "docs/internals.rst names files that do not exist:\n" + "\n".join(missing)


def test_every_repository_path_in_twisted_notes_exists():
    # The notes say which module works around each defect; a moved module must not leave them wrong.
    rst = (DOCS / "twisted-notes.rst").read_text(encoding="utf-8")
    paths = {
        span for span in re.findall(r"``([^`\s]+)``", rst)
        if re.match(r"(?:mailsrv|tests|bench|docs|etc|twisted/plugins)/[\w./-]+\Z", span)
    }
    assert "mailsrv/listeners.py" in paths
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, "docs/twisted-notes.rst names files that do not exist:\n" + "\n".join(missing)


# -- (b) docs/rfc-support.rst and the RFC citations in mailsrv/ -----------------------

_BORDER = re.compile(r"=+(?: +=+)+\s*\Z")
#: "RFC 5321", and the slash-joined forms "RFC 2045/2046", "RFC 6855 / 9051".
_CITATION = re.compile(r"\bRFC (\d{3,4}(?:\s*/\s*\d{3,4})*)\b")


def _columns(border: str) -> list[tuple[int, int | None]]:
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
    return [(start, end) for start, end in spans[:-1]] + [(spans[-1][0], None)]


def rfc_table_rows(rst: str) -> list[dict[str, str]]:
    """Rows of every simple table in *rst*, as ``{header: cell text}``.

    A simple table is a border, header line, border, body lines, border; a
    body line whose first column is blank continues the row above it.
    """
    rows: list[dict[str, str]] = []
    lines = rst.splitlines()
    i = 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            i += 1
            continue
        columns = _columns(lines[i])
        ends = [j for j in range(i + 1, len(lines)) if _BORDER.match(lines[j])][:2]
        if len(ends) < 2:
            break
        cut = lambda line: [line[a:b].strip() for a, b in columns]  # noqa: E731
        headers = [h.lower() for h in cut(lines[i + 1])]
        for line in lines[ends[0] + 1 : ends[1]]:
            if not line.strip():
                continue
            cells = cut(line)
            if cells[0] or not rows:
                rows.append(dict(zip(headers, cells)))
            else:
                for header, cell in zip(headers, cells):
                    rows[-1][header] = (rows[-1][header] + " " + cell).strip()
        i = ends[1] + 1
    return rows


def rfc_table() -> dict[str, str]:
    """RFC number -> status (``yes``, ``partial``, ``no``, ``n/a``) from docs/rfc-support.rst."""
    table: dict[str, str] = {}
    for row in rfc_table_rows((DOCS / "rfc-support.rst").read_text(encoding="utf-8")):
        status = row.get("status", "").strip("*").lower()
        for number in re.findall(r"\d{3,4}", row.get("rfc", "")):
            # An RFC listed twice (SASL PLAIN for SMTP and IMAP) counts as supported if any row says so.
            if table.get(number) not in ("yes", "partial"):
                table[number] = status
    return table


def rfc_citations() -> dict[str, list[str]]:
    """RFC number -> ``file:line`` of each citation in mailsrv/."""
    cited: dict[str, list[str]] = {}
    for path in _python_files("mailsrv"):
        text = path.read_text(encoding="utf-8")
        for m in _CITATION.finditer(text):
            where = f"{path.relative_to(ROOT)}:{_line_of(text, m.start())}"
            for number in re.findall(r"\d+", m.group(1)):
                cited.setdefault(number, []).append(where)
    return cited


def test_rfc_table_is_parsed():
    table = rfc_table()
    assert table.get("5321") == "partial" and table.get("3501") == "partial" and table.get("2034") == "yes"
    assert len(table) > 30


def test_every_cited_rfc_has_a_row_in_rfc_support():
    table = rfc_table()
    missing = sorted((n, w) for n, where in rfc_citations().items() if n not in table for w in where[:1])
    assert not missing, "RFCs cited in mailsrv/ without a row in docs/rfc-support.rst:\n" + "\n".join(
        f"RFC {n} (first cited at {w})" for n, w in missing
    )


def test_every_supported_rfc_is_cited_in_the_code():
    cited = rfc_citations()
    uncited = sorted(n for n, status in rfc_table().items() if status in ("yes", "partial") and n not in cited)
    assert not uncited, "docs/rfc-support.rst calls these supported, but no code in mailsrv/ cites them:\n" + "\n".join(
        f"RFC {n}" for n in uncited
    )


# -- (c) nothing points outside the repository ----------------------------------------

#: Notes and paths that exist only outside a clone.  Spelled in pieces so
#: that this file does not match a grep for them.
OUTSIDE = ("TWISTED" "-NOTES", "../" "shared", "/work/" "shared", "DESIGN" ".md")
#: What a contributor's clone holds that is documentation or code.
SCANNED = ("mailsrv", "docs", "bench", "tests", "etc", "twisted", "README.rst", "setup.py", "pyproject.toml")
_SKIPPED_DIRS = {"__pycache__", ".pytest_cache"}


def _scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for candidate in candidates:
            if candidate.is_file() and candidate.resolve() != THIS_FILE and not _SKIPPED_DIRS & set(candidate.parts):
                if candidate.suffix not in (".pyc", ".pyo"):
                    files.append(candidate)
    return files


def test_nothing_refers_to_notes_outside_the_repository():
    found = []
    for path in _scanned_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(needle in line for needle in OUTSIDE):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "references to files a clone does not have (cite docs/ instead):\n" + "\n".join(found)


# -- (d) citations of docs/twisted-notes.rst -------------------------------------------

_NOTES = "docs/twisted-notes.rst"
_GAP = r"\s*(?:#\s*)?"  # white space, and the "#" of a comment continued on the next line
#: The citation form: the path, a comma, one heading in double quotes or several
#: joined by "," / "and" / "or"; a heading may wrap onto the next line.
_NOTES_CITATION = re.compile(
    re.escape(_NOTES) + "," + _GAP + r'("[^"]+"(?:' + _GAP + r"(?:,|and|or)?" + _GAP + r'"[^"]+")*)'
)


def notes_headings() -> list[str]:
    return section_titles((DOCS / "twisted-notes.rst").read_text(encoding="utf-8"))


def notes_citations() -> tuple[list[tuple[str, str]], list[str]]:
    """``(heading, file:line)`` for each citation in the code, and mentions without a heading."""
    citations, bare = [], []
    for path in _python_files("mailsrv", "tests", "bench"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(re.escape(_NOTES), text):
            where = f"{path.relative_to(ROOT)}:{_line_of(text, m.start())}"
            cited = _NOTES_CITATION.match(text, m.start())
            if cited is None:
                bare.append(where)
            else:
                for heading in re.findall(r'"([^"]+)"', cited.group(1)):
                    citations.append((re.sub(r"\s*\n\s*#?\s*", " ", heading).strip(), where))
    return citations, bare


def test_twisted_notes_headings_are_unique():
    headings = notes_headings()
    assert len(headings) > 20
    assert sorted(h for h in set(headings) if headings.count(h) > 1) == []


def test_every_twisted_notes_citation_names_a_heading():
    headings = set(notes_headings())
    citations, _ = notes_citations()
    unknown = [f'{where}: "{heading}"' for heading, where in citations if heading not in headings]
    assert not unknown, f"citations of {_NOTES} naming no section of it:\n" + "\n".join(unknown)


def test_twisted_notes_is_cited_with_a_heading():
    _, bare = notes_citations()
    assert not bare, f'cite {_NOTES} as {_NOTES}, "<heading>":\n' + "\n".join(bare)


def test_every_twisted_check_reports_under_a_heading_of_the_notes():
    # docs/twisted_checks.py prints one line per section; a renamed section must not orphan its check.
    source = (DOCS / "twisted_checks.py").read_text(encoding="utf-8")
    reported = re.findall(r'@check\("([^"]+)"\)', source) + re.findall(r'results\.append\(\("([^"]+)"', source)
    assert len(reported) > 20
    headings = set(notes_headings())
    assert sorted(set(reported) - headings) == []


def test_section_titles_reads_underlined_and_overlined_titles():
    rst = "=====\nTitle\n=====\n\nText\n\nOne\n---\n\n  text::\n\n    not a title\n\nTwo words\n=========\n"
    assert section_titles(rst) == ["Title", "One", "Two words"]


def test_docs_render_without_warnings():
    core = pytest.importorskip("docutils.core")
    for path in [*sorted(DOCS.glob("*.rst")), ROOT / "README.rst"]:
        core.publish_doctree(
            path.read_text(encoding="utf-8"),
            source_path=str(path),
            settings_overrides={"halt_level": 2, "report_level": 2},
        )


def test_the_readme_shows_the_fail2ban_filter_that_docs_ships():
    """The regex an admin reads in the README is the one in the file it says to copy."""
    lines = (ROOT / "etc" / "fail2ban" / "filter.d" / "mailsrv.conf").read_text().splitlines()
    (failregex,) = [line for line in lines if line.startswith("failregex = ")]
    assert "    " + failregex + "\n" in (ROOT / "README.rst").read_text()
