"""kong.conf-style settings: one file plus ``KONG_*`` environment overrides -> one frozen ``Settings``.

Rules, in the order they apply (Kong's own order, ``kong/conf_loader``):

1. Every key has a default, declared once in ``specs.SPECS`` (the same defaults as ``kong.conf.default``
   unless the comment says otherwise); ``conf/gateway.conf`` documents each one.
2. The configuration file (``-c``) overrides defaults. Syntax: ``key = value``, ``#`` starts a comment
   unless escaped as ``\\#``, blank lines ignored. An unknown key is an error that names the key.
3. ``KONG_<KEY>`` environment variables override the file (so existing docker-compose files work).
   Unknown ``KONG_*`` variables are ignored: containers commonly carry settings of Kong features we do
   not have (``KONG_PG_HOST``...), and failing on them would break drop-in use. They are reported by
   ``Settings.ignored_env`` so the CLI can log them.
4. Values are parsed and validated per key; a bad value is an error naming the key and what is accepted.
5. No value is accepted and then ignored: a value Kong would honour and this gateway cannot (the PROXY
   protocol, an HTTPS Admin or Status API listener, a log format...) is refused with the reason
   (``UNSUPPORTED``), while Kong's own defaults stay valid so that an unmodified kong.conf starts. A stand-in
   for Kong that quietly ignores a setting lets a test suite pass here and fail on Kong.

Aliases: Kong's injected nginx spellings (``nginx_proxy_proxy_ssl_verify`` ...) map onto our first-class keys.

Modules, one job each: ``parsers`` (values), ``listeners`` (``*_listen`` entries), ``specs`` (defaults, parsers,
aliases), ``model`` (the ``Settings`` dataclass), ``refusals`` (cross-checks and ``UNSUPPORTED``), ``loading`` (the
order above). Callers import from ``gateway.settings``.
"""

from gateway.settings.listeners import Listener
from gateway.settings.loading import load_settings, parse_conf_text
from gateway.settings.model import Settings
from gateway.settings.parsers import ConfigError
from gateway.settings.refusals import UNSUPPORTED, Unsupported
from gateway.settings.specs import ALIASES, SPECS, Spec

__all__ = [
    "ALIASES",
    "SPECS",
    "UNSUPPORTED",
    "ConfigError",
    "Listener",
    "Settings",
    "Spec",
    "Unsupported",
    "load_settings",
    "parse_conf_text",
]
