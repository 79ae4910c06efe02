"""``gateway doctor``: explain a TLS input in words, for a person holding a file or a failing endpoint.

Every sub-command is one module here, with one entry point that returns findings (``gateway.doctor.findings``): data
first, words second, so the text and the ``--json`` output say the same thing and tests match on kinds. The verdicts
come from the code the gateway runs (``gateway.tls``: PEM loading, key match, chain verification with OpenSSL's codes
and depth, the host check), never from a second implementation of the rules: when the doctor says a chain verifies
at depth 2, a service with ``tls_verify_depth = 2`` accepts it.

- ``cert``: a PEM bundle, its key, a CA file, a host name (``gateway doctor cert``), with ``reading`` (files to
  certificates and keys), ``bundle`` (the bundle's structure and the words for a certificate) and ``trust`` (the
  bundle against a CA file);
- ``conf``: the certificate, key and CA files a configuration names, loaded as ``gateway start`` loads them
  (``gateway check``).

- ``upstream``: the handshake the gateway would make to an upstream (``gateway doctor upstream``), made by the
  gateway's own profile compiler and connector, with the chain, each verification step and the error-log line.

- ``admin``, ``service``, ``sni``, ``commands``: a running gateway asked through its Admin API (``gateway doctor
  service NAME``: the profile with each value's origin, rebuilt from the same rows and handed to ``upstream.examine``;
  ``gateway doctor sni NAME``: the certificate served and the rule, optionally checked by a handshake), with their
  command-line entries.
"""
