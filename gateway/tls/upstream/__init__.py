"""Layers 3 and 4, upstream: the client certificate presented and the trust applied, per service (``profile``);
connecting under them (``connect``); and the separate rules of active health-check probes (``probes``).

See ``gateway/tls/__init__.py`` for the map of the four layers.
"""
