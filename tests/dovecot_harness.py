"""A real Dovecot (``doveadm``, no daemon) on a test's own Maildirs (no tests of its own).

:class:`Doveadm` writes a minimal Dovecot configuration into a temp dir
with ``mail_location`` pointing at the same ``<root>/<domain>/<local>``
Maildirs as a :class:`~mailsrv.store.Store` on *root*, and runs ``doveadm``
mail commands for a user.  No auth daemon is needed: ``doveadm`` without
``-u`` takes the user from ``$USER`` and the uid from ``mail_uid``.

Dovecot refuses to touch mail as root.  When the tests run as root (CI),
Dovecot runs as ``nobody`` and the Maildirs are handed to ``nobody`` before
each command (mailsrv, as root, reads them either way), as they would
belong to one mail user in production.  So that ``nobody`` can reach them
(and Dovecot's socket paths stay short), everything lives in a fresh
directory directly under the system's temp dir: :attr:`Doveadm.root` is
the Store's root.

Tests using it skip, with the reason, where ``doveadm`` is not installed
(Debian: ``dovecot-core``, which ``.ci/run`` installs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from twisted.trial import unittest

DOVEADM = shutil.which("doveadm")
SKIP_REASON = "doveadm (Debian: dovecot-core) is not installed"
NOBODY = 65534

CONFIG = """\
log_path = {dir}/dovecot.log
base_dir = {dir}/run
state_dir = {dir}/state
mail_location = maildir:{root}/%d/%n
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 0
first_valid_gid = 0
ssl = no
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
}}
"""


class Doveadm:
    """``doveadm`` mail commands for the users of a Store's *root*."""

    def __init__(self, case: unittest.SynchronousTestCase) -> None:
        if DOVEADM is None:
            raise unittest.SkipTest(SKIP_REASON)
        self.dir = tempfile.mkdtemp(prefix="mailsrv-dovecot-")
        case.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.root = os.path.join(self.dir, "mail")
        os.makedirs(self.root)
        self.uid, self.gid = (NOBODY, NOBODY) if os.getuid() == 0 else (os.getuid(), os.getgid())
        self.config = os.path.join(self.dir, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(dir=self.dir, root=self.root, uid=self.uid, gid=self.gid))

    def run(self, user: str, *args: str, stdin: bytes | None = None) -> str:
        """``doveadm ARGS`` as *user*; its output (fails the test on a non-zero exit)."""
        self._hand_over()
        env = dict(os.environ, USER=user, HOME=self.dir)
        done = subprocess.run([DOVEADM, "-c", self.config, *args], input=stdin, env=env,
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"doveadm {' '.join(args)}: exit {done.returncode}: {done.stderr.decode()}")
        return done.stdout.decode("utf-8")

    def save(self, user: str, message: bytes, mailbox: str = "INBOX") -> None:
        self.run(user, "save", "-m", mailbox, stdin=message)

    def uids_and_flags(self, user: str, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags as Dovecot sees them (``\\Recent`` left out: it is per session)."""
        out = self.run(user, "fetch", "uid flags", "mailbox", mailbox, "all")
        found = {}
        for uid, flags in re.findall(r"^uid: (\d+)\nflags: ?(.*)$", out, re.M):
            found[int(uid)] = set(flags.split()) - {"\\Recent"}
        return found

    def status(self, user: str, mailbox: str = "INBOX") -> dict[str, int]:
        """``uidvalidity``, ``uidnext`` and ``messages`` of a mailbox."""
        out = self.run(user, "mailbox", "status", "uidvalidity uidnext messages", mailbox)
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)}

    def _hand_over(self) -> None:
        if os.getuid() != 0:
            return
        for path, _, files in os.walk(self.root):
            os.chown(path, self.uid, self.gid)
            for name in files:
                os.chown(os.path.join(path, name), self.uid, self.gid)
