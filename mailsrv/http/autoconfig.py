"""Thunderbird's autoconfig file (``config-v1.1.xml``), which K-9, FairEmail and Evolution read too.

Thunderbird asks ``https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=...``
and then ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``;
both are served here for every local domain.  The file lists each client
listener of :mod:`.clientsettings`; the user name is the full address
(``%EMAILADDRESS%``), as our logins want, and the password goes in clear
inside TLS only (``password-cleartext`` over ``SSL`` or ``STARTTLS``).
"""

from __future__ import annotations

from xml.etree import ElementTree

from twisted.web.server import Request

from mailsrv.config import Config
from mailsrv.http.clientsettings import ClientServer, client_servers
from mailsrv.http.pages import ConfigPage, Refused, host_domain, query_address


def provider_domain(request: Request, config: Config) -> str:
    """The domain asked about: the address's, else the ``autoconfig.<domain>`` host's, else the first local one."""
    address = query_address(request, config)
    if address is not None:
        return address.rpartition("@")[2]
    return host_domain(request, config, "autoconfig") or config.domains[0]


def config_xml(config: Config, domain: str) -> bytes:
    """The clientConfig document for *domain*, naming every local domain as served by this provider."""
    root = ElementTree.Element("clientConfig", version="1.1")
    provider = ElementTree.SubElement(root, "emailProvider", id=domain)
    for local in (domain, *(d for d in config.domains if d != domain)):
        ElementTree.SubElement(provider, "domain").text = local
    ElementTree.SubElement(provider, "displayName").text = f"{domain} ({config.hostname})"
    ElementTree.SubElement(provider, "displayShortName").text = domain
    for server in client_servers(config):
        _server(provider, server)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _server(provider: ElementTree.Element, server: ClientServer) -> None:
    tag = "incomingServer" if server.incoming else "outgoingServer"
    element = ElementTree.SubElement(provider, tag, type=server.protocol)
    for name, text in (
        ("hostname", server.hostname), ("port", str(server.port)),
        ("socketType", "SSL" if server.implicit_tls else "STARTTLS"),
        ("authentication", "password-cleartext"), ("username", "%EMAILADDRESS%"),
    ):
        ElementTree.SubElement(element, name).text = text


class Autoconfig(ConfigPage):
    """``config-v1.1.xml`` for the domain asked about."""

    content_type = b"application/xml; charset=utf-8"

    def page(self, request: Request) -> bytes:
        """The document; an ``emailaddress`` that is no local address is refused."""
        if not self.config.domains:
            raise Refused(404, "this server has no local domain")
        return config_xml(self.config, provider_domain(request, self.config))
