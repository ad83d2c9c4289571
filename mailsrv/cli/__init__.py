"""The ``mailsrv`` command: manage users and aliases of a (running) server.

:mod:`.main` holds the parser, the exit codes and the error printing; each
command group is one module (:mod:`.users`, :mod:`.aliases`) that turns
arguments into a call of :mod:`mailsrv.ops` and prints the result.
"""
