"""What every protocol server shares: input framing, the command loop, the session, the audit log.

* :mod:`.lines` -- the bounded input buffer (lines and raw octets);
* :mod:`.pump` -- one command at a time, flow control both ways;
* :mod:`.session` -- who is connected: peer address, TLS state, user, listener kind;
* :mod:`.audit` -- the one log schema for logins, transactions, deliveries, rejections;
* :mod:`.limits` -- connections per client address and in total;
* :mod:`.login` -- checking a password through the portal, the same way for every protocol;
* :mod:`.server` -- the base class the SMTP, POP3 and IMAP servers derive from.
"""
