"""``[auth]``: how logins over SMTP AUTH, POP3 and IMAP are taken."""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Table, at_least, setting


@dataclass(frozen=True)
class AuthConfig(Table):
    """Authentication policy."""

    DOC = "Logins over SMTP AUTH (submission), POP3 and IMAP."

    allow_plaintext_auth_on_loopback: bool = setting(
        False,
        "Let clients on 127.0.0.1/::1 send passwords without TLS (for local webmail or testing). "
        "Everywhere else passwords need TLS.",
    )
    cache_seconds: int = setting(
        60,
        "Seconds a successful password check is remembered, so a client opening several connections "
        "pays for the (deliberately slow) hash only once.",
    )
    max_queued_checks: int = setting(
        64,
        "Password checks waiting for or running on a hashing thread; more fail at once as a temporary "
        "error, so a flood of guesses cannot queue without bound.",
        at_least(1),
    )
    rehash: bool = setting(
        True,
        "After a successful login, replace a user's stored hash that is not Argon2id (SHA512-CRYPT, "
        "SSHA, ... as a Dovecot user file holds) by an Argon2id one, in the users file.",
    )
    cleartext_passwords: bool = setting(
        False,
        "Accept user-file entries in clear text ({PLAIN}, {CLEAR}, {CLEARTEXT}), as a Dovecot file may "
        "hold; a warning is logged at start. Off: such lines are ignored with a warning.",
    )
