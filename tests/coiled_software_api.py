"""Coiled's software environment API faked at ``coiled.list_software_environments`` and
``coiled.create_software_environment``: the installed signatures, the v2 alias shape the coiled
CLI itself reads (``latest_spec.latest_build.{id, state}``), builds numbered as Coiled does."""

from __future__ import annotations

import copy
import inspect


class FakeSoftwareAPI:
    def __init__(self, coiled):
        self._list_signature = inspect.signature(coiled.list_software_environments)
        self._create_signature = inspect.signature(coiled.create_software_environment)
        self.aliases: dict[str, dict] = {}
        self.list_calls: list[dict] = []
        self.create_calls: list[dict] = []
        self._next_build = 100

    def build(self, name: str, state: str = "built") -> int:
        """A new build of ``name`` (created or rebuilt) becomes its latest; its id."""
        self._next_build += 1
        alias = self.aliases.setdefault(name, {"id": len(self.aliases) + 1, "name": name})
        alias["latest_spec"] = {
            "id": self._next_build * 10,
            "latest_build": {"id": self._next_build, "state": state},
        }
        return self._next_build

    def list_software_environments(self, *args, **kwargs) -> dict:
        self._list_signature.bind(*args, **kwargs)
        self.list_calls.append(kwargs)
        return copy.deepcopy(self.aliases)

    def create_software_environment(self, *args, **kwargs) -> dict:
        """Answers as Coiled's POST does, before the build finishes (state "queued")."""
        bound = self._create_signature.bind(*args, **kwargs)
        self.create_calls.append(dict(bound.arguments))
        name = bound.arguments["name"]
        self.build(name, state="queued")
        answer = copy.deepcopy(self.aliases[name])
        self.aliases[name]["latest_spec"]["latest_build"]["state"] = "built"
        return answer


def installed(monkeypatch):
    """The fake API in place, and a fresh process's view: no build resolved yet (a fixture's
    body: ``yield from installed(monkeypatch)``)."""
    import coiled

    from ocr_resources.coiled_software import software_build

    api = FakeSoftwareAPI(coiled)
    monkeypatch.setattr(coiled, "list_software_environments", api.list_software_environments)
    monkeypatch.setattr(coiled, "create_software_environment", api.create_software_environment)
    software_build.cache_clear()
    yield api
    software_build.cache_clear()
