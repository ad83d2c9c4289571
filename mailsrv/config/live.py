"""The configuration in force, which SIGHUP replaces while the server runs.

The protocols read ``ServerContext.config`` where they use a value, so a
new one reaches them by itself.  A few long-lived objects work from values
prepared when they were made (parsed networks, DNS lists, table sizes) and
hold state a reload must not lose (rate counters, greylist triplets, failed
logins): each follows the holder with a function that takes the new values
into the object it has.  Followers run on the reactor thread, in the order
they were added, right after :attr:`LiveConfig.current` changed.
"""

from __future__ import annotations

from typing import Callable

from mailsrv.config.server import Config


class LiveConfig:
    """The current :class:`Config` and who must hear of a new one."""

    def __init__(self, config: Config) -> None:
        self.current = config
        self._followers: list[Callable[[Config], object]] = []

    def follow(self, apply: Callable[[Config], object]) -> None:
        """Call *apply* with each configuration that replaces the current one."""
        self._followers.append(apply)

    def replace(self, config: Config) -> None:
        """Make *config* the current one, and tell every follower."""
        self.current = config
        for apply in self._followers:
            apply(config)
