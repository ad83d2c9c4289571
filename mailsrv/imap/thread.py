"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 3, 4) and the THREAD response.

The tree is built from :class:`Node` objects; a node without a message is
a *dummy* (a message referred to but not among those searched).  Every
walk over the tree is a loop with its own stack, so a reply chain of any
length (or a hostile References field) cannot exhaust Python's recursion.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from mailsrv.imap.sort import Hit
from mailsrv.imap.sortfields import MessageFields


class Node:
    """A container of the RFC 5256 4 algorithm: a message (or none), its parent and children."""

    __slots__ = ("number", "fields", "seq", "parent", "children")

    def __init__(self, number: int | None = None, fields: MessageFields | None = None, seq: int = 0) -> None:
        self.number = number  # what the response shows: sequence number or UID; None for a dummy
        self.fields = fields
        self.seq = seq
        self.parent: Node | None = None
        self.children: list[Node] = []

    @property
    def dummy(self) -> bool:
        """Whether no searched message is in this container."""
        return self.fields is None

    def adopt(self, child: "Node") -> None:
        """Make *child* this node's last child, taking it from its old parent."""
        child.detach()
        child.parent = self
        self.children.append(child)

    def detach(self) -> None:
        """Break the link to the parent, if any."""
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def descends_from(self, other: "Node") -> bool:
        """Whether *other* is this node or one of its ancestors (linking would make a loop).

        A node without children is nobody's ancestor: the References of one
        message, each a new container, link in linear time, not quadratic.
        """
        if not other.children:
            return self is other
        node: Node | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False

    def first_message(self) -> "Node":
        """The node itself, or for a dummy its first child (RFC 5256 4: what a dummy is sorted by)."""
        return self.children[0] if self.dummy and self.children else self

    def date_key(self) -> tuple[float, int]:
        """RFC 5256 2.2: sent date, then mailbox order."""
        node = self.first_message()
        return (node.fields.sent, node.seq) if node.fields is not None else (0.0, 0)


def _walk(roots: Sequence[Node]) -> Iterator[Node]:
    """Every node under *roots*, parents before their children."""
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _sort_siblings(roots: list[Node]) -> None:
    """RFC 5256 4 (6): sort each set of siblings by sent date, the deepest first, then *roots*."""
    for node in reversed(list(_walk(roots))):
        node.children.sort(key=Node.date_key)
    roots.sort(key=Node.date_key)


def _node(hit: Hit, uid: bool) -> Node:
    message, fields = hit
    return Node(message.uid if uid else message.seq, fields, message.seq)


def ordered_subject(hits: Sequence[Hit], uid: bool) -> list[Node]:
    """RFC 5256 3: threads of one base subject, each message a child of the thread's first."""
    ordered = sorted(hits, key=lambda hit: (hit[1].subject_key, hit[1].sent, hit[0].seq))
    roots: list[Node] = []
    for hit in ordered:
        node = _node(hit, uid)
        if roots and roots[-1].fields is not None and roots[-1].fields.subject_key == hit[1].subject_key:
            roots[-1].children.append(node)
            node.parent = roots[-1]
        else:
            roots.append(node)
    roots.sort(key=Node.date_key)
    return roots


def references(hits: Sequence[Hit], uid: bool) -> list[Node]:
    """RFC 5256 4: the REFERENCES algorithm, step by step."""
    roots = _link(hits, uid)  # (1), (2)
    roots = _prune(roots)  # (3)
    roots.sort(key=lambda n: _sorted_first(n).date_key())  # (4)
    roots = _merge_subjects(roots)  # (5)
    _sort_siblings(roots)  # (6)
    return roots


def _link(hits: Sequence[Hit], uid: bool) -> list[Node]:
    """Steps (1) and (2): containers linked by Message-ID and References; the parentless ones."""
    table: dict[str, Node] = {}
    everything: list[Node] = []
    for hit in hits:
        fields = hit[1]
        node = table.get(fields.message_id) if fields.message_id is not None else None
        if node is not None and node.dummy:  # referred to before: fill the container
            node.number, node.fields, node.seq = _node(hit, uid).number, fields, hit[0].seq
        else:
            # No Message-ID, or one an earlier message has: a container of its own (4 (1)).
            node = _node(hit, uid)
            everything.append(node)
            if fields.message_id is not None and fields.message_id not in table:
                table[fields.message_id] = node
        # (1)(A) link the references in order, keeping existing links, never making a loop
        previous: Node | None = None
        for reference in fields.references:
            container = table.get(reference)
            if container is None:
                container = table[reference] = Node()
                everything.append(container)
            if previous is not None and container.parent is None and not previous.descends_from(container):
                previous.adopt(container)
            previous = container
        # (1)(B) the last reference is the parent, replacing any parent the message had
        node.detach()
        if previous is not None and not previous.descends_from(node):
            previous.adopt(node)
    return [node for node in everything if node.parent is None]


def _prune(roots: list[Node]) -> list[Node]:
    """Step (3): drop empty dummies; splice a dummy's children into its place.

    At the top level a dummy is replaced by its children only when it has
    exactly one, so that messages of one conversation stay together.
    """
    for node in reversed(list(_walk(roots))):  # children first
        if not node.dummy or node.parent is None:
            continue
        parent = node.parent
        at = parent.children.index(node)
        for child in node.children:
            child.parent = parent
        parent.children[at : at + 1] = node.children
        node.parent, node.children = None, []
    kept: list[Node] = []
    for node in roots:
        if not node.dummy:
            kept.append(node)
        elif len(node.children) == 1:
            child = node.children[0]
            child.parent = None
            kept.append(child)
        elif node.children:
            kept.append(node)
    return kept


def _sorted_first(node: Node) -> Node:
    """Step (4): a dummy's children are sorted by date, and the dummy goes by its first."""
    if node.dummy:
        node.children.sort(key=Node.date_key)
    return node


def _subject_of(node: Node) -> MessageFields | None:
    """Step (5)(B)(i): the fields of the message a top-level container takes its subject from."""
    first = node.first_message()
    fields = first.fields
    return fields if fields is not None and fields.subject_key else None


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """Step (5): threads whose base subjects are equal become one."""
    table: dict[bytes, Node] = {}
    for node in roots:  # (B) one container per subject, preferring dummies, then originals
        fields = _subject_of(node)
        if fields is None:
            continue
        held = table.get(fields.subject_key)
        if held is None:
            table[fields.subject_key] = node
        elif not held.dummy and (node.dummy or (_refwd(held) and not fields.refwd)):
            table[fields.subject_key] = node
    merged: set[int] = set()
    replaced: dict[int, Node] = {}  # id of a top-level message -> the new dummy in its place
    for node in roots:  # (C) merge each other container with the one in the table
        fields = _subject_of(node)
        if fields is None:
            continue
        held = table[fields.subject_key]
        if held is node:
            continue
        merged.add(id(node))
        if held.dummy and node.dummy:
            for child in list(node.children):
                held.adopt(child)
        elif held.dummy or (fields.refwd and not _refwd(held)):
            held.adopt(node)
        else:
            dummy = Node()
            replaced[id(held)] = dummy
            dummy.adopt(held)
            dummy.adopt(node)
            table[fields.subject_key] = dummy
    return [replaced.get(id(node), node) for node in roots if id(node) not in merged]


def _refwd(node: Node) -> bool:
    fields = node.first_message().fields
    return fields is not None and fields.refwd


def unlink(roots: Sequence[Node]) -> None:
    """Break every parent-child link under *roots*, so reference counting frees the nodes at once.

    A thread of 100,000 nodes left to the cyclic collector is a full walk
    of them while no session is served.
    """
    for node in list(_walk(roots)):
        node.parent = None
        node.children = []


def render(roots: Sequence[Node]) -> bytes:
    """``* THREAD`` data (RFC 5256 5): a chain inline, branches nested, a dummy as a bare list."""
    out: list[bytes] = []
    stack: list[Node | bytes] = list(reversed(roots))
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node = item
        numbers: list[bytes] = []
        if not node.dummy:
            numbers.append(b"%d" % node.number)  # type: ignore[str-bytes-safe]
            while len(node.children) == 1:
                node = node.children[0]
                numbers.append(b"%d" % node.number)  # type: ignore[str-bytes-safe]
        out.append(b"(" + b" ".join(numbers))
        if node.children:
            out.append(b" " if numbers else b"")
            stack.append(b")")
            stack.extend(reversed(node.children))
        else:
            out.append(b")")
    return b"".join(out)
