"""Attack: one STORE and one EXPUNGE over a 30,000-message INBOX.

Every flag change is a rename of the message's file and every expunge an
unlink; run one after the other on the reactor thread, 30,000 of them froze
every session of every protocol for as long as the disk took (and a slow
disk takes seconds).  They run in the disk pool, so a probe stays answered
while one user changes the flags of a whole folder and empties it.
"""

from __future__ import annotations

import os

from attack import Closed, Probe, Silent, attacker_source, imap_login, log_problems, maildir_of, verdict


def test_store_and_expunge_of_a_whole_big_folder(big_inbox_server, big_inbox):
    """The probe is answered within 250 ms throughout; afterwards the folder is empty on disk."""
    server = big_inbox_server
    conn = imap_login(server, big_inbox.address, attacker_source(0), timeout=300)
    problems: list[str | None] = []
    with conn, Probe(server) as probe:
        try:
            conn.imap(b"s", b"SELECT INBOX", timeout=300)
            for tag, command in ((b"f", b"STORE 1:* +FLAGS.SILENT (\\Seen \\Deleted)"), (b"e", b"EXPUNGE")):
                reply = conn.imap(tag, command, timeout=300)
                if not reply.startswith(tag + b" OK"):
                    problems.append(f"{command.decode()} answered {reply!r}")
        except (Silent, Closed) as e:
            problems.append(f"STORE/EXPUNGE: {e}")
    inbox = maildir_of(server, big_inbox.address)
    left = [name for sub in ("cur", "new") for name in os.listdir(os.path.join(inbox, sub))]
    if left:
        problems.append(f"{len(left)} message files left after EXPUNGE")
    problems += [probe.problem()]
    problems += log_problems(server.log())
    verdict(problems, probe.summary())
