"""Certificates from an ACME CA (RFC 8555: Let's Encrypt and the like), obtained and renewed while serving.

With ``[tls] acme = true`` the server orders a certificate for
:attr:`mailsrv.config.Config.acme_names`, answers the CA's HTTP-01
challenge on its ``http`` listener, and swaps the certificate into every
TLS listener (:class:`mailsrv.tls.ServerTLS`) without a restart; until the
first one is issued the configured or self-signed one serves.  One concern
per module:

* :mod:`.files` -- the account key, the certificate and the lock under ``<data_dir>/acme/``;
* :mod:`.renewal` -- whether the stored certificate needs a new order, and the retry delays;
* :mod:`.challenge` -- the tokens the CA fetches over HTTP, handed from the ordering thread to the reactor;
* :mod:`.order` -- one order with the ``acme`` library (synchronous: it runs in a thread);
* :mod:`.service` -- when to check and order, and the swap.
"""
