"""The acl plugin (Kong OSS): allow or deny a request by the groups of its consumer (``/consumers/{c}/acls``) or the
groups an authentication plugin set (mtls-auth's ``authenticated_group_by``), after authentication."""

from gateway.plugins.acl.handler import NAME, Acl

__all__ = ["NAME", "Acl"]
