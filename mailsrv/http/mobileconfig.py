"""An Apple configuration profile (``.mobileconfig``) setting up one address in Mail on iOS and macOS.

Apple devices have no autoconfig lookup; the user opens this file (from
``/apple/mailsrv.mobileconfig?emailaddress=...``) and installs it.  It is a
property list with one ``com.apple.mail.managed`` payload, unsigned (the
device says "unverified"; signing needs the certificate's key, which the
HTTP listener does not hold).  The UUIDs are derived from the address, so a
profile downloaded again replaces the installed one instead of adding a
second account.  IMAP is preferred over POP3, implicit TLS over STARTTLS
(:mod:`.clientsettings`); without TLS from the first byte Mail still
upgrades with STARTTLS, as our plain listeners always offer it.
"""

from __future__ import annotations

import plistlib
import uuid

from twisted.web.server import Request

from mailsrv.config import Config
from mailsrv.http.clientsettings import ClientServer, client_servers
from mailsrv.http.pages import ConfigPage, Refused, query_address

#: Namespace of the profile UUIDs: the same address always gets the same UUIDs.
_NAMESPACE = uuid.UUID("7f1d5e8a-4c1b-5a8e-9a51-6d2b0c3e9f10")


def profile(config: Config, address: str) -> bytes:
    """The profile for *address* as plist XML; :class:`Refused` when no incoming or outgoing listener is on."""
    servers = client_servers(config)
    incoming = next((s for s in servers if s.incoming), None)
    outgoing = next((s for s in servers if not s.incoming), None)
    if incoming is None or outgoing is None:
        raise Refused(404, "this server has no IMAP/POP3 or submission listener to configure")
    identifier = ".".join(reversed(config.hostname.split("."))) + ".mailsrv"
    payload = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.email.{address}",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"email {address}")).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap" else "EmailTypePOP",
        "EmailAddress": address,
        **_server("Incoming", incoming, address),
        **_server("Outgoing", outgoing, address),
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    document = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.{address}",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"profile {address}")).upper(),
        "PayloadDisplayName": f"Mail for {address}",
        "PayloadDescription": f"Sets up {address} on {config.hostname}.",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(document, fmt=plistlib.FMT_XML)


def _server(prefix: str, server: ClientServer, address: str) -> dict[str, object]:
    return {
        f"{prefix}MailServerHostName": server.hostname,
        f"{prefix}MailServerPortNumber": server.port,
        f"{prefix}MailServerUseSSL": server.implicit_tls,
        f"{prefix}MailServerAuthentication": "EmailAuthPassword",
        f"{prefix}MailServerUsername": address,
    }


class MobileConfig(ConfigPage):
    """The profile for ``?emailaddress=``."""

    content_type = b"application/x-apple-aspen-config"

    def page(self, request: Request) -> bytes:
        """The profile, offered as a file to save."""
        address = query_address(request, self.config)
        if address is None:
            raise Refused(400, "give the address: ?emailaddress=you@example.org")
        request.setHeader(b"Content-Disposition", b'attachment; filename="mailsrv.mobileconfig"')
        return profile(self.config, address)
