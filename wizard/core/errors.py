"""The two errors of the core: an invalid input (ScenarioError) and a scenario that cannot
fit (SizingError). Each carries where it is as fields: the parameter `key`, the `service`
(None: not one service's, or the scenario has one) and, for sizing, the `endpoint`. Surfaces
read the fields (wizard/guard.py, the app's form) and never parse the message; str(exc)
words them in front of it ("service 'api': primary: ..."), as it always has.
"""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario input is invalid; the message names the value and the valid choices.

    `key` names the share/CLI parameter at fault, when one is, so a form can show the
    message beside its field; `service` the service whose input it is, when the scenario
    names several; `message` is the text without the service.
    """

    def __init__(self, message: str, key: str | None = None, service: str | None = None):
        super().__init__(f"service {service!r}: {message}" if service else message)
        self.message = message
        self.key = key
        self.service = service

    def at(self, service: str | None = None, key: str | None = None) -> ScenarioError:
        """The same error, said of a service (and keyed by its own parameter)."""
        return ScenarioError(self.message, key or self.key, self.service or service)


class SizingError(ValueError):
    """The scenario cannot fit; `fix` says what to change. `service` and `endpoint` say
    where (None: not one service's / not one endpoint's); `message` is the text without
    them and `said` the text with them (what every surface shows before the fix)."""

    def __init__(self, message: str, fix: str, service: str | None = None,
                 endpoint: str | None = None):
        self.message = message
        self.fix = fix
        self.service = service
        self.endpoint = endpoint
        super().__init__(f"{self.said} Fix: {fix}")

    @property
    def said(self) -> str:
        return ((f"service {self.service!r}: " if self.service else "")
                + (f"{self.endpoint}: " if self.endpoint else "") + self.message)

    def at(self, service: str | None = None, endpoint: str | None = None) -> SizingError:
        """The same error, said of a service and an endpoint (fields already set stay)."""
        return SizingError(self.message, self.fix, self.service or service,
                           self.endpoint or endpoint)
