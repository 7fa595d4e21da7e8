"""The destination of one run, through its adapter: what it can do, and each repository made
ready for a push once.

The capabilities are measured once per run (:meth:`RegistryAdapter.current_capabilities`: a
probe's answer is cached by the adapter, which runs share). A repository is checked against the
provider's name rules and prepared (ECR creates the repository, Harbor the project) before the
first artifact goes to it; tasks of the same repository wait for that one preparation.
"""

from __future__ import annotations

import logging

import anyio

from adapters.base import Capabilities, RegistryAdapter
from adapters.oci.errors import OciError
from adapters.protocol import RegistryClient

__all__ = ["Destination"]

log = logging.getLogger("seawall.engine")


class Destination:
    """One run's destination registry. Create with :meth:`open`."""

    def __init__(self, adapter: RegistryAdapter, capabilities: Capabilities) -> None:
        self.adapter = adapter
        self.capabilities = capabilities
        self._prepared: set[str] = set()
        self._locks: dict[str, anyio.Lock] = {}

    @classmethod
    async def open(cls, adapter: RegistryAdapter) -> Destination:
        """The destination with its current capabilities; a probe that fails (the registry is
        down or refuses) leaves the declared, conservative ones."""
        try:
            capabilities = await adapter.current_capabilities()
        except OciError as e:
            log.info("%r: capability probe failed (%s); using the declared ones", adapter, e)
            capabilities = adapter.capabilities
        return cls(adapter, capabilities)

    @property
    def client(self) -> RegistryClient:
        return self.adapter.client()

    async def prepare(self, repository: str) -> None:
        """Check ``repository`` against the provider's rules and prepare it, once per run
        (concurrent callers wait for the one preparation; a failed one is tried again by the
        next caller).

        :raises adapters.base.InvalidRepositoryName: the provider cannot hold the name.
        :raises OciError: the provider refused to prepare it.
        """
        if repository in self._prepared:
            return
        self.adapter.check_name(repository)
        lock = self._locks.setdefault(repository, anyio.Lock())
        async with lock:
            if repository in self._prepared:
                return
            await self.adapter.prepare_repository(repository)
            self._prepared.add(repository)
