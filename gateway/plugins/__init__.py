"""Plugins: the handler contract (``base``), per-route chains with Kong's precedence (``chains``), and the
plugins themselves. Importing this package registers the built-in handlers."""

from gateway.plugins import acl, mtls_auth, prometheus, tls_metadata_headers
from gateway.plugins.base import BuildContext, Exit, Plugin, PluginContext, handler_class, register_handler
from gateway.plugins.chains import Chain, PluginIndex, run_access, run_header_filter, run_log

__all__ = [
    "BuildContext",
    "Chain",
    "Exit",
    "Plugin",
    "PluginContext",
    "PluginIndex",
    "acl",
    "handler_class",
    "mtls_auth",
    "prometheus",
    "register_handler",
    "run_access",
    "run_header_filter",
    "run_log",
    "tls_metadata_headers",
]
