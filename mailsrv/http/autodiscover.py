"""Outlook's autodiscover (the "POX" schema of 2006), which Outlook and many phone clients use.

The client POSTs a small XML document naming the ``EMailAddress`` to
``/autodiscover/autodiscover.xml`` (some send a GET with
``?emailaddress=``); the answer lists IMAP, POP3 and SMTP from
:mod:`.clientsettings`.  The request is parsed with a document type
refused outright, so no entity expansion can blow it up, and its size is
bounded by the site (``[http] max_request_body``).
"""

from __future__ import annotations

from xml.etree import ElementTree

from twisted.web.server import Request

from mailsrv.config import Config
from mailsrv.http.clientsettings import ClientServer, client_servers
from mailsrv.http.pages import ConfigPage, Refused, local_address, query_address

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def requested_address(body: bytes, config: Config) -> str:
    """The ``EMailAddress`` of an autodiscover request, checked; :class:`Refused` for anything else."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Refused(400, "a document type is not allowed in an autodiscover request")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise Refused(400, "the autodiscover request is not well-formed XML") from None
    element = root.find(f"{{{REQUEST_NS}}}Request/{{{REQUEST_NS}}}EMailAddress")
    if element is None:
        element = root.find("Request/EMailAddress")
    if element is None or not (element.text or "").strip():
        raise Refused(400, "the autodiscover request has no Request/EMailAddress")
    return local_address(config, element.text.strip())


def response_xml(config: Config, address: str) -> bytes:
    """The POX response telling *address*'s client every server it may use."""
    # Default namespaces as plain xmlns attributes: the document reads as Microsoft's examples do.
    root = ElementTree.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ElementTree.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    account = ElementTree.SubElement(response, "Account")
    _texts(account, [("AccountType", "email"), ("Action", "settings")])
    for server in client_servers(config):
        _protocol(account, server, address)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _texts(parent: ElementTree.Element, pairs: list[tuple[str, str]]) -> None:
    for name, text in pairs:
        ElementTree.SubElement(parent, name).text = text


def _protocol(account: ElementTree.Element, server: ClientServer, address: str) -> None:
    protocol = ElementTree.SubElement(account, "Protocol")
    _texts(protocol, [
        ("Type", server.protocol.upper()), ("Server", server.hostname), ("Port", str(server.port)),
        ("LoginName", address), ("DomainRequired", "off"), ("SPA", "off"),
        # "SSL on" with "Encryption" says which TLS: SSL = implicit, TLS = STARTTLS.
        ("SSL", "on"), ("Encryption", "SSL" if server.implicit_tls else "TLS"), ("AuthRequired", "on"),
    ])
    if not server.incoming:
        _texts(protocol, [("UsePOPAuth", "off"), ("SMTPLast", "off")])


class Autodiscover(ConfigPage):
    """``/autodiscover/autodiscover.xml``: POST with the request document, or GET with ``?emailaddress=``."""

    content_type = b"application/xml; charset=utf-8"

    def page(self, request: Request) -> bytes:
        """The response for the address the request names."""
        if request.method == b"POST":
            request.content.seek(0)
            address = requested_address(request.content.read(), self.config)
        else:
            found = query_address(request, self.config)
            if found is None:
                raise Refused(400, "POST an autodiscover request, or GET with ?emailaddress=")
            address = found
        return response_xml(self.config, address)

    def render_POST(self, request: Request) -> bytes:
        """The client's request document is the body."""
        return self.answer(request)
