"""A small client of a Dagster webserver's GraphQL API (what the UI itself talks to)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class DeployError(RuntimeError):
    """A deployment that cannot be used as asked; the message says what and how to fix it."""


class GraphQL:
    """POSTs queries to ``{url}/graphql``; an answer with errors raises ``DeployError``."""

    def __init__(self, url: str, timeout_s: float = 60):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # Loopback and private deployments are reached directly, never through a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # GraphQL errors come back as HTTP 400/500
            try:
                answer = json.loads(exc.read() or b"{}")
            except json.JSONDecodeError:
                raise DeployError(
                    f"{self.url} answered HTTP {exc.code}: not a Dagster webserver"
                ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeployError(
                f"cannot reach the Dagster webserver at {self.url} ({reason}): check "
                "--dagster-url and that the deployment's webserver is running"
            ) from None
        if answer.get("errors"):
            messages = "; ".join(e.get("message", "?") for e in answer["errors"])
            raise DeployError(f"GraphQL error from {self.url}: {messages}")
        return answer["data"]
