"""TLS as Kong has it: four layers, each in one place, over one engine (pyOpenSSL, with nginx/OpenSSL semantics).

A reader looking for one of Kong's TLS decisions finds it here by the layer's name:

1. **The certificate served, chosen by SNI** -> ``tls/served/``: ``certificates`` (the SNI index and Kong's lookup
   order: exact, ``*.x``, ``x.*``, the ``*`` SNI entity, the default), ``sni_names`` (the wildcard candidates of a
   client SNI), ``contexts`` (certificate rows compiled into contexts), ``defaults`` (``ssl_cert`` or the generated
   pair), ``presets`` (``ssl_cipher_suite``, protocols, ciphers), ``ticket_keys``, ``listener`` (what an ``ssl``
   listener takes from the settings).
2. **The client certificate asked for and verified downstream (mtls-auth)** -> ``gateway/plugins/mtls_auth/``:
   ``handshake`` (asking for it in the handshake, per SNI, with the CA names to send) and ``handler`` (verifying it in
   the access phase: 401s, consumers, revocation), as Kong's plugin holds its certificate and access phases together.
3. **The client certificate presented upstream** -> ``tls/upstream/profile``: the service's, else the Upstream
   entity's, else the global ``client_ssl_cert`` (``UpstreamTlsCompiler``); ``material`` (client certificates
   parsed), ``globals`` (the global trust stores and client certificate, read once per settings load).
4. **Trust in the upstream** -> ``tls/upstream/profile`` too (``tls_verify``, ``ca_certificates`` replacing the store,
   ``tls_verify_depth``), ``tls/upstream/connect`` (SNI, host check, sessions keyed like the pool, nginx's failure
   wording) and ``tls/upstream/probes`` (the different rules of active health checks).

``tls/engine/`` is what every layer stands on and knows nothing of Kong: ``session`` (sans-I/O ``TlsSession`` over
memory BIOs) with ``errors``, ``info`` and ``records``; ``transport`` and ``app_transport`` (the asyncio glue, both
directions); ``x509`` (PEM, trust stores, chain verification, digests), ``verify_codes`` (OpenSSL's codes, the verify
callback) and ``hostnames`` (``check_host``). ``tls/pem_settings`` is the one reader of PEM settings from kong.conf,
on Kong's rules, for every layer.

Rules: dependencies point down (``served``/``upstream`` -> ``engine``; nothing here imports HTTP, the proxy or the
store); a layer's change touches its folder; everything expensive (contexts, parsed PEM) is built with the snapshot,
never per request.
"""
