"""Where accepted mail goes: the routing decision and the delivery agents.

* :mod:`.envelope` -- one message in transit: queue id, sender, recipients, body;
* :mod:`.router` -- recipient -> local users | remote | refused (no protocol in it);
* :mod:`.local` -- delivery into the store, one write for every local recipient;
* :mod:`.queue` -- the seam where the durable queue for remote mail will go.

SMTP decides *whether* to accept a recipient with the router and hands an
accepted message to :class:`~.local.LocalDelivery` (or, once it exists, to
the queue); it never talks to the store itself.
"""
