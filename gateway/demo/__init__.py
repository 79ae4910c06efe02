"""``gateway demo``: a guided walk through Kong's four TLS layers, with nothing but this package installed.

A learner runs one command and watches each layer decide, with real processes on loopback and a throwaway PKI:

- ``pki``: root -> intermediate -> leaves (the served certificate, client certificates for each level) and
  a longer chain for the upstream whose verification needs depth 2, made with ``cryptography`` in a temp dir;
- ``upstreams``: local TLS upstreams written with asyncio + ``ssl`` (one that requires a client certificate and
  says which one it got, one that sends the long chain), in a thread of the demo's process;
- ``gatewayproc``: the gateway itself as a subprocess (``python -m gateway start``) on free loopback ports in a
  temp prefix, restarted once (the global ``client_ssl_cert`` is read at start only);
- ``client``: the Admin API calls, each printed as a ``curl`` line a reader can copy, and the proxied requests
  (with ``Kong-Debug: 1``, whose ``X-Gateway-TLS-*`` answer headers are printed when the gateway sends them);
- ``steps``: the steps as data (what is set up, what is asked, the outcome expected);
- ``run``: the loop, the machine-checkable ``step N: ok (expected X, got Y)`` lines, the exit status and the
  cleanup (processes and temp dir, also on Ctrl-C, SIGTERM or a failure).
"""
