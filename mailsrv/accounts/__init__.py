"""Accounts: users, aliases and local domains; password hashing; cred.

``<data_dir>/users`` (Dovecot passwd-file style), ``<data_dir>/aliases``
and ``<data_dir>/senders`` are the only account storage.  The server reads them through
:class:`Directory` and re-reads them when they change; the ``mailsrv`` CLI
(:mod:`mailsrv.cli`, through :mod:`mailsrv.ops`) edits them with the helpers in :mod:`.users` and
:mod:`.aliases`; what an address is, :mod:`mailsrv.address` says.  Modules:

* :mod:`.passwords` -- ``{SCHEME}hash`` strings, Argon2id;
* :mod:`.schemes` -- verifying the schemes of a Dovecot user file;
* :mod:`.rehash` -- replacing an old scheme's hash after a login;
* :mod:`.textfile` -- text helpers of the file formats, locked edits;
* :mod:`.users`, :mod:`.aliases`, :mod:`.senders` -- the three file formats;
* :mod:`.directory` -- recipient resolution, and who may send as what;
* :mod:`.cred` -- checker, realm and portal.
"""

from mailsrv.accounts.cred import make_portal
from mailsrv.accounts.directory import Directory

__all__ = ["Directory", "make_portal"]
