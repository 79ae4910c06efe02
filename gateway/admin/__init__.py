"""The Admin API: Kong's paths, fields, status codes and error JSON over the store.

``AdminApp`` is the request -> response function (usable without sockets); ``start_admin_server`` serves
it on an ``admin_listen`` entry.
"""

from gateway.admin.app import AdminApp
from gateway.admin.server import start_admin_server

__all__ = ["AdminApp", "start_admin_server"]
