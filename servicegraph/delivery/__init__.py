"""Delivery of the desk's notifications: the channels (SMTP mail, signed webhooks) and the
sender job that empties the outbox (``ticketing.outbox``) through them. An adapter layer:
the domain renders and enqueues messages, only this package talks to the network."""
