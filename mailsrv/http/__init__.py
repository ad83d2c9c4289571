"""The HTTP listeners (``[listen] http``, ``https``, ``metrics``), served with twisted.web.

One module per resource, none of which knows the others:

* :mod:`.clientsettings` -- which of our listeners a mail client should use;
* :mod:`.autoconfig` -- Thunderbird's ``config-v1.1.xml``;
* :mod:`.autodiscover` -- Outlook's POX autodiscover;
* :mod:`.mobileconfig` -- an Apple configuration profile;
* :mod:`.mtasts` -- the MTA-STS policy file (RFC 8461 3.3);
* :mod:`.metrics` -- Prometheus metrics counted from the audit log, and
  :mod:`.metricspage` serving them;
* :mod:`.pages` -- the error handling and request checks they share;
* :mod:`.site` -- the resource tree per listener kind, request limits, the factory.
"""
