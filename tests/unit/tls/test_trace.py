"""``gateway.tls.trace``: the header of each layer, the origin labels, and the ``key=value; `` rendering."""

from __future__ import annotations

from gateway.tls.trace import Origin, Sourced, TraceHeader, render


def test_each_layer_has_its_header() -> None:
    assert [h.value for h in TraceHeader] == [
        "X-Gateway-TLS-Downstream",
        "X-Gateway-TLS-Client-Auth",
        "X-Gateway-TLS-Upstream-Cert",
        "X-Gateway-TLS-Upstream-Trust",
    ]


def test_origin_labels() -> None:
    assert Sourced(Origin.SERVICE).label == "service"
    assert Sourced(Origin.GLOBAL, "proxy_ssl_verify").label == "global setting proxy_ssl_verify"
    assert Sourced(Origin.DEFAULT).label == "default"


def test_render_keeps_plain_values_and_quotes_what_would_break_the_list() -> None:
    assert render((("verify", "on"), ("subject", "CN=a,O=b"))) == "verify=on; subject=CN=a,O=b"
    assert render((("subject", 'CN=a;b "c"'),)) == 'subject="CN=a;b \\"c\\""'
    assert render((("subject", "CN=evil\r\nX-Injected: 1"),)) == "subject=CN=evil  X-Injected: 1"
    # non-ASCII goes out as its UTF-8 bytes (held as latin-1 text, as the proxy writes heads)
    assert render((("subject", "CN=é"),)).encode("latin-1") == "subject=CN=é".encode()
