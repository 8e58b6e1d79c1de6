"""What a smoke stack is made of: the names of its network and containers, and the ports the app
and the sidecar listen on inside it.

Its own module because three jobs name these parts without needing each other: starting and
removing a stack (:mod:`buildtools.engine.stack`), asking it over HTTP from inside its network
(:mod:`buildtools.engine.stack_probe`), and the Compose file (``invoke compose``).
"""

from __future__ import annotations

from dataclasses import dataclass

APP_PORT = 3000
SIDECAR_PORT = 80


@dataclass(frozen=True)
class Stack:
    name: str
    url: str
    # What a person must do before the URL answers (an engine behind a tunnel), or "".
    note: str = ""

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    @property
    def app(self) -> str:
        return f"{self.name}-app"

    @property
    def sidecar(self) -> str:
        return f"{self.name}-nginx"

    def service(self, service: str) -> str:
        return f"{self.name}-{service}"
