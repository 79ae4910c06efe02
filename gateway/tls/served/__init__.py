"""Layer 1, the certificate served: Kong's SNI lookup, the default pair, the TLS presets, the ssl listener's settings.

See ``gateway/tls/__init__.py`` for the map of the four layers.
"""
