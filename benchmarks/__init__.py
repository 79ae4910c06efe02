"""Benchmarks: the gateway next to nginx, same upstream, same load, same machine, one run.

``python -m benchmarks.run`` (``make bench``) is the suite; see ``run.py``. ``compare.py`` runs one scenario
against an older copy of the gateway and nginx (before/after figures), ``tls_transport.py`` measures the TLS
engine alone, ``idle_connections.py`` the memory of idle TLS connections, ``profile.py`` profiles under load.
"""
