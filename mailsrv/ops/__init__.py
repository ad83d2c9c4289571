"""Account operations: what an admin can do to users and aliases, without any front end.

The ``mailsrv`` command (:mod:`mailsrv.cli`) and a later HTTP API call the
same plain functions, so a rule (a user must be in a local domain, an
alias may not shadow a user) is enforced once whoever asks.  Each function
takes a :class:`~mailsrv.config.Config` and its arguments, returns data,
and raises :class:`OpsError` with a message for the admin; none prints,
prompts or parses arguments.  Modules:

* :mod:`.users` -- add, remove, list users, set passwords;
* :mod:`.aliases` -- add, remove, list aliases and catch-alls;
* :mod:`.dkim` -- make and list DKIM signing keys;
* :mod:`.selftest` (with :mod:`.probe`, our listeners as a client reaches them) -- the
  round trip of ``mailsrv selftest``;
* :mod:`.init` -- the first configuration file and data dir;
* :mod:`.common` -- the errors, the data dir, the address rules, the locked file edit.
"""

from mailsrv.ops.common import NoDataDir, OpsError, use_data_dir

__all__ = ["NoDataDir", "OpsError", "use_data_dir"]
