"""Kong's TLS model in an asyncio gateway.

``GATEWAY_PURE_PYTHON=1`` runs the compiled request path from its sources (``gateway.compiled``): set before any
other ``gateway`` module is imported, which is why it is read here.
"""

import os

if os.environ.get("GATEWAY_PURE_PYTHON"):
    from gateway.compiled import install_source_first

    install_source_first()
