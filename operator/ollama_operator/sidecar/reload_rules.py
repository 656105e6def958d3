"""Which reloaded config the sidecar takes: a reload may tighten, never open the door.

Every field of ``sidecar.yaml`` has a default, and the defaults are the open
ones: no ``apiKeysFile`` is auth off, no ``internalTokenFile`` is an open
``/status``, no ``gateway.rateLimit`` is no limit, no ``models`` is nothing
declared. So an empty document (``""``, a comment, ``null``, ``{}``) validates,
and taking it would switch every protection off at once. Such documents are
what a half-written file looks like: an editor that truncates and then writes,
a ConfigMap being replaced, a volume being remounted. The controller never
renders one. So, on a reload (the file at start is taken as it is, with the
loud "AUTH IS OFF" warning when it says so), :func:`load_reload` refuses:

- ``unreadable``: the file cannot be read or is not YAML;
- ``empty``: the document is empty (any of the above, or another false value);
- ``invalid``: it does not validate;
- ``auth_off``: the running config names an API keys file and the new one does
  not: turning auth off takes a restart with a config that says so;
- ``token_off``: the same for the internal token of ``/status``.

A refused reload keeps the last good config; the caller counts it by reason
(``ollama_gateway_config_reload_refusals_total``) and logs it once, as the file
watcher calls back once per change. Messages name the file and the rule, never
a key or a token (the config holds neither, only the paths of their files).
"""

from __future__ import annotations

from typing import Any

import yaml

from ..api.sidecar_config import SidecarConfig

#: Every value of the ``reason`` label.
REASONS = ("unreadable", "empty", "invalid", "auth_off", "token_off")


class ReloadRefused(Exception):
    """A reloaded config that is not taken; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_document(path: str) -> Any:
    """The parsed YAML document of a file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise ReloadRefused(
            "unreadable", f"cannot read it ({exc.strerror or type(exc).__name__})"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ReloadRefused("unreadable", f"it is not YAML: {type(exc).__name__}") from None


def check_reload(current: SidecarConfig, document: Any) -> SidecarConfig:
    """The new config from a reloaded document, or :class:`ReloadRefused` saying why not."""
    if not document:
        raise ReloadRefused(
            "empty",
            "the document is empty (a file being rewritten?); an empty config would turn "
            "auth, the rate limit and the cache off",
        )
    try:
        new = SidecarConfig.from_mapping(document)
    except Exception as exc:
        raise ReloadRefused("invalid", str(exc)) from None
    if current.api_keys_file is not None and new.api_keys_file is None:
        raise ReloadRefused(
            "auth_off",
            "it names no apiKeysFile: turning auth off takes a restart, not a reload",
        )
    if current.internal_token_file is not None and new.internal_token_file is None:
        raise ReloadRefused(
            "token_off",
            "it names no internalTokenFile: opening /status takes a restart, not a reload",
        )
    return new


def load_reload(path: str, current: SidecarConfig) -> SidecarConfig:
    """Read and check a reloaded config file (see the module's rules)."""
    return check_reload(current, read_document(path))
