"""LIST with RFC 5258's extended syntax, RFC 6154's special uses and RFC 5819's STATUS.

``LIST [(selection options)] reference (pattern ...) [RETURN (options)]``:

* selection ``SUBSCRIBED`` lists subscribed names (``\\NonExistent`` when
  the folder is gone), ``RECURSIVEMATCH`` adds a folder the patterns match
  whose subscribed descendant they do not, with ``("CHILDINFO"
  ("SUBSCRIBED"))`` (RFC 5258 3.5: ``%`` shows ``Foo`` for ``Foo/Bar``),
  ``SPECIAL-USE`` lists only folders with a use (RFC 6154 5.1), ``REMOTE``
  changes nothing (there are no remote folders);
* return ``SUBSCRIBED`` adds ``\\Subscribed``; ``CHILDREN`` and
  ``SPECIAL-USE`` are always on (RFC 5258 4 and RFC 6154 2 let a server
  send them unasked, as Dovecot does); ``STATUS (...)`` sends a ``STATUS``
  response after each selectable folder's LIST line (RFC 5819 2).

The plain RFC 3501 form is the same command with no options.  An unknown
option is ``BAD`` (RFC 5258 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailsrv.imap.account import names_above, pattern_regex
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import bad, syntax

if TYPE_CHECKING:
    from mailsrv.imap.account import Account

_SELECT_OPTIONS = frozenset({b"SUBSCRIBED", b"REMOTE", b"RECURSIVEMATCH", b"SPECIAL-USE"})
_RETURN_OPTIONS = frozenset({b"SUBSCRIBED", b"CHILDREN", b"SPECIAL-USE", b"STATUS"})
_CHILDINFO_SUBSCRIBED = b'("CHILDINFO" ("SUBSCRIBED"))'


@dataclass
class ListCommand:
    """One LIST, parsed."""

    reference: str
    patterns: list[str]
    select: set[bytes] = field(default_factory=set)
    returns: set[bytes] = field(default_factory=set)
    #: The STATUS items of ``RETURN (STATUS (...))`` (RFC 5819), if asked for.
    status: list[bytes] | None = None

    @property
    def extended(self) -> bool:
        """Whether RFC 5258 options or a pattern list were used (then ``""`` is no delimiter request)."""
        return bool(self.select or self.returns) or len(self.patterns) != 1


@dataclass(frozen=True)
class Entry:
    """One LIST response: the folder, its attributes, CHILDINFO, whether it can be selected."""

    name: str
    attributes: list[str]
    childinfo: bool = False
    selectable: bool = True


def _options(args: Arguments, known: frozenset[bytes]) -> tuple[set[bytes], list[bytes] | None]:
    """``(option ...)``, possibly empty, each one of *known*; and the items of ``STATUS (...)``."""
    if not args.expect(b"("):
        raise syntax(b"Option list expected")
    options: set[bytes] = set()
    status = None
    while not args.expect(b")"):
        if options:
            args.space()
        option = args.atom().upper()
        if option not in known:
            raise bad(b"Unknown LIST option")
        options.add(option)
        if option == b"STATUS":  # RFC 5819 2: STATUS takes its items
            args.space()
            status = [item.upper() for item in args.atom_list()]
    return options, status


def parse_list(args: Arguments) -> ListCommand:
    """The arguments of LIST (RFC 5258 6 grammar)."""
    select: set[bytes] = set()
    if args.peek() == b"(":  # an astring cannot start with "(": these are selection options
        select, _ = _options(args, _SELECT_OPTIONS)
        args.space()
        if b"RECURSIVEMATCH" in select and not select - {b"RECURSIVEMATCH", b"REMOTE"}:
            raise bad(b"RECURSIVEMATCH needs another selection option")  # RFC 5258 3.1
    reference = args.list_mailbox()
    args.space()
    if args.expect(b"("):
        patterns = [args.list_mailbox()]
        while not args.expect(b")"):
            args.space()
            patterns.append(args.list_mailbox())
    else:
        patterns = [args.list_mailbox()]
    command = ListCommand(reference, patterns, select)
    if args.more():
        args.space()
        if not args.expect(b"RETURN "):
            raise syntax(b"RETURN expected")
        command.returns, command.status = _options(args, _RETURN_OPTIONS)
    args.end()
    if b"SUBSCRIBED" in select:
        command.returns.add(b"SUBSCRIBED")  # RFC 5258 3.1: SUBSCRIBED implies its return option
    return command


async def entries(account: "Account", command: ListCommand) -> list[Entry]:
    """The LIST responses for *command*, INBOX first, each folder once (RFC 5258 3)."""
    user = account.user
    existing = await user.list_folders()
    uses = await user.special_use()
    subscribed = await user.subscriptions() if b"SUBSCRIBED" in command.returns else set()
    regexes = [pattern_regex(command.reference, p) for p in command.patterns]

    def matches(name: str) -> bool:
        return any(r.fullmatch(name) for r in regexes)

    present = set(existing)
    # Every name with a folder below it, and every name above a subscribed folder the patterns leave
    # out: one pass over the levels, so a LIST costs no more than the names it lists.
    parents = {parent for name in existing for parent in names_above(name)}
    above_unlisted = {parent for name in subscribed if not matches(name) for parent in names_above(name)}
    # RFC 3501 6.3.4: a parent without a folder of its own (deleted, or never made by another program)
    # is still listed, \Noselect, while it has inferiors.
    implied = parents - present
    select = command.select
    candidates = present | implied
    if b"SUBSCRIBED" in select:
        candidates = set(subscribed)
        if b"RECURSIVEMATCH" in select:
            candidates |= {parent for name in subscribed for parent in names_above(name)}
    result = []
    for name in sorted(filter(matches, candidates), key=lambda n: (n != "INBOX", n)):
        # RFC 5258 3.5: CHILDINFO for a subscribed descendant the patterns did not list.
        childinfo = b"RECURSIVEMATCH" in select and name in above_unlisted
        if b"SUBSCRIBED" in select and name not in subscribed and not childinfo:
            continue
        if b"SPECIAL-USE" in select and name not in uses:
            continue  # RFC 6154 5.1
        if name in present:
            attributes = ["\\HasChildren" if name in parents else "\\HasNoChildren"]
        elif name in implied:
            attributes = ["\\Noselect", "\\HasChildren"]
        else:
            attributes = ["\\NonExistent"]  # RFC 5258 3.4: implies \Noselect
        if name in subscribed:
            attributes.append("\\Subscribed")
        attributes += sorted(uses.get(name, ()))
        result.append(Entry(name, attributes, childinfo, name in present))
    return result


def childinfo(entry: Entry) -> bytes:
    """The extended data of a LIST response (RFC 5258 3.5), with its leading space, or nothing."""
    return b" " + _CHILDINFO_SUBSCRIBED if entry.childinfo else b""
