"""Spam scoring with rspamd: every port 25 message is scanned before the 250; users' Junk moves teach it.

rspamd (a separate daemon) does the scoring; this package speaks its HTTP
protocol and turns its answers into what SMTP and the store do.  Modules:
:mod:`.rspamd` (the client: ``/checkv2``, ``/learnspam``, ``/learnham``),
:mod:`.producer` (a message file streamed as the request body, read in
the disk pool), :mod:`.verdict` (an action as a reply, X-Spam fields, a
subject, a folder), :mod:`.check` (the policy check on port 25) and
:mod:`.learn` (IMAP COPY and MOVE into and out of Junk).  ``[spam]`` is
:mod:`mailsrv.config.spam`.
"""
