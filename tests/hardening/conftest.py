"""The hardening tests reuse the management API's fixtures: ``api`` (in-process) and ``live``
(the session's real ``seawall serve``)."""

from tests.api.conftest import api, live  # noqa: F401 - fixtures
