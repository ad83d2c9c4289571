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
        "pays for the (deliberately slow) hash only once.", restart=True,
    )
    max_queued_checks: int = setting(
        64,
        "Password checks waiting for or running on a hashing thread; more fail at once as a temporary "
        "error, so a flood of guesses cannot queue without bound.",
        at_least(1), restart=True,
    )
    rehash: bool = setting(
        True,
        "After a successful login, replace a user's stored hash that is not Argon2id (SHA512-CRYPT, "
        "SSHA, ... as a Dovecot user file holds) by an Argon2id one, in the users file.", restart=True,
    )
    cleartext_passwords: bool = setting(
        False,
        "Accept user-file entries in clear text ({PLAIN}, {CLEAR}, {CLEARTEXT}), as a Dovecot file may "
        "hold; a warning is logged at start. Off: such lines are ignored with a warning.", restart=True,
    )
    throttle_delay: int = setting(
        1,
        "Seconds a failed login's reply is held; it doubles with each further failure from the same "
        "address or for the same account (a timer: no thread waits). 0: no delay.",
        at_least(0),
    )
    throttle_max_delay: int = setting(30, "Ceiling of that delay, in seconds.", at_least(0))
    throttle_failures_per_ip: int = setting(
        10,
        "Failed logins from one client address (an IPv6 /64) within throttle_window that lock it out "
        "for throttle_lockout: its logins are refused without a password check. 0: never.",
        at_least(0),
    )
    throttle_failures_per_account: int = setting(
        30,
        "Failed logins for one user name, from any address, within throttle_window that lock the "
        "account out for throttle_lockout (guessing spread over many addresses). 0: never.",
        at_least(0),
    )
    throttle_window: int = setting(
        900, "Seconds after its last failure that an address's or account's failures are forgotten.", at_least(1)
    )
    throttle_lockout: int = setting(900, "Seconds a lock-out lasts.", at_least(1))
    throttle_tracked: int = setting(
        10000,
        "Client addresses, and separately user names, whose failures are remembered; past that the one "
        "that failed longest ago is forgotten, so guesses from many addresses cannot grow memory.",
        at_least(1),
    )
