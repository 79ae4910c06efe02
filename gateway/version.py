"""Version strings.

``__version__`` is this project's version. ``KONG_VERSION`` is the Kong release whose behaviour we reproduce;
it is what ``Server``/``Via`` headers and ``GET /`` report (``kong/<KONG_VERSION>``), so test suites written
against Kong keep matching. ``gateway version`` prints both. See docs/compatibility.md.
"""

__version__ = "0.1.0"
KONG_VERSION = "3.9.1"
SERVER_TOKEN = f"kong/{KONG_VERSION}"

__all__ = ["KONG_VERSION", "SERVER_TOKEN", "__version__"]
