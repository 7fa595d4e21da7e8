"""The hardening tests reuse the management API's in-process harness (``api``)."""

from tests.api.conftest import api  # noqa: F401 - a fixture
