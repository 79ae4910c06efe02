"""The downstream side: client connections and the HTTP they speak (where HTTP/2 and WebSockets will land).

- ``connection`` (``HttpConnection``: the request queue, timers, limits, counters, access log) and ``http1`` (one
  protocol class per parser, httptools and h11, over it); ``tls_listener`` (an ``ssl`` listener: TLS, or nginx's
  400 page for plain HTTP, in front of the same connection).
- ``request`` (the request head and nginx's checks on it), ``headers`` (header rules, ``Via``/``Server``/``Date``),
  ``responses`` and ``generated`` (Kong's and nginx's generated answers), ``rejects`` (the answer to malformed
  input), ``flow`` (read pausing reasons).

Nothing here imports the proxy above it, not even for type checking: ``contracts`` names, as Protocols, what a
connection and a listener use of ``ProxyState``, and of the exchange a connection creates per request
(``ProxyState.exchange_type``).
"""
