"""Benchmarks: the gateway next to nginx, same upstream, same load, same machine, one run.

``python -m benchmarks.run`` (``make bench``) is the suite; see ``run.py``. The older single-purpose scripts
(``tls_transport.py``, ``upstream_tls.py``, ``downstream_tls.py``) remain for focused experiments.
"""
