"""``ollama-operator run`` starts kopf with an identity that needs no passwd entry."""

from __future__ import annotations

import pwd
from typing import Any

import kopf
import pytest

from ollama_operator.controller import main


def test_the_operator_starts_as_a_uid_without_a_passwd_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in the image: UID 65532 has no passwd entry, and getpass.getuser() raises.
    def no_entry(uid: int) -> Any:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)
        # What kopf does with the identity it is given (None: it asks getpass).
        kwargs["identity"] or kopf._core.engines.peering.detect_own_id(manual=False)

    monkeypatch.setattr(kopf, "operator", operator)
    assert main.run(namespaces=["a"]) == 0
    assert seen["identity"].startswith("ollama-operator@")
    assert seen["namespaces"] == ["a"]
