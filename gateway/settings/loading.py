"""Defaults <- kong.conf file <- ``KONG_*`` environment <- explicit overrides -> one checked ``Settings``."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

from gateway.settings.model import Settings
from gateway.settings.parsers import ConfigError
from gateway.settings.refusals import cross_check, refuse_unsupported
from gateway.settings.specs import ALIASES, SPECS

__all__ = ["load_settings", "parse_conf_text"]


_SETTING_FIELDS = {f.name for f in dataclasses.fields(Settings)} - {"source", "ignored_env"}
assert set(SPECS) == _SETTING_FIELDS, sorted(_SETTING_FIELDS ^ set(SPECS))


def parse_conf_text(text: str, source: str = "<conf>") -> dict[str, str]:
    """Parse kong.conf syntax into raw strings; unknown keys raise ``ConfigError`` naming the key and line."""
    values: dict[str, str] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(?<!\\)#.*", "", raw_line).replace("\\#", "#").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfigError(f"{source}:{lineno}: expected 'key = value', got '{raw_line.strip()}'")
        key = ALIASES.get(key, key)
        if key not in SPECS:
            raise ConfigError(f"{source}:{lineno}: unknown setting '{key}'")
        values[key] = value.strip()
    return values


def load_settings(
    conf_path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults <- file <- ``KONG_*`` environment <- explicit overrides (the CLI's ``-p``)."""
    env = os.environ if env is None else env
    raw = {key: spec.default for key, spec in SPECS.items()}
    if conf_path is not None:
        try:
            with open(conf_path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {conf_path}: {exc.strerror}") from None
        raw.update(parse_conf_text(text, conf_path))
    ignored = []
    for name, value in env.items():
        if not name.startswith("KONG_"):
            continue
        key = name[5:].lower()
        key = ALIASES.get(key, key)
        if key in SPECS:
            raw[key] = value
        else:
            ignored.append(name)
    for key, value in (overrides or {}).items():
        raw[ALIASES.get(key, key)] = value
    parsed = {key: SPECS[key].parse(key, value) for key, value in raw.items()}
    settings = Settings(**parsed, source=conf_path, ignored_env=tuple(sorted(ignored)))
    cross_check(settings)
    refuse_unsupported(settings, raw)
    return settings
