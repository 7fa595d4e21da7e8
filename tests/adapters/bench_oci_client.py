"""Measure OciClient against CNCF distribution (not a test; run by hand).

    .venv/bin/python -m tests.adapters.bench_oci_client [--size-mib 256] [--uvloop]

Prints push and pull throughput of one blob (MiB/s) and client CPU per ``HEAD`` manifest at
16 in flight (this process' CPU time only: the registry runs in another process).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from adapters.oci import OciClient
from tests.adapters.content import MiB, Source, push_image
from tests.support.distribution import DistributionProcess


async def bench_blob(url: str, size_mib: int, chunk_bytes: int | None) -> None:
    data = os.urandom(size_mib * MiB)
    source = Source(data, piece_bytes=MiB)
    async with OciClient(url) as oci:
        started = time.perf_counter()
        await oci.upload_blob(
            "bench/blob", source.digest, len(data), source, chunk_bytes=chunk_bytes
        )
        push_s = time.perf_counter() - started
        for hashing in (False, True):
            rates = []
            for _ in range(5):
                h = hashlib.sha256()
                started = time.perf_counter()
                async with oci.blob_stream("bench/blob", source.digest) as blob:
                    async for chunk in blob.iter_chunks(MiB):
                        if hashing:
                            h.update(chunk)
                rates.append(size_mib / (time.perf_counter() - started))
            label = "pull+sha256" if hashing else "pull"
            print(f"{label:12} {size_mib} MiB: {statistics.median(rates):7.0f} MiB/s (median of 5)")
    chunking = f"chunks of {chunk_bytes // MiB} MiB" if chunk_bytes else "default chunking"
    print(f"push         {size_mib} MiB ({chunking}): {size_mib / push_s:7.0f} MiB/s")


async def bench_head(url: str, requests: int, in_flight: int) -> None:
    async with OciClient(url, max_in_flight=in_flight) as oci:
        digest, _ = await push_image(oci, "bench/head", "v1", b"layer")
        for _ in range(50):  # warm up connections
            await oci.head_manifest("bench/head", digest)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                assert await oci.head_manifest("bench/head", digest) is not None

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"HEAD manifest x{requests} at {in_flight} in flight: {cpu / requests * 1000:.3f} ms "
        f"client CPU/request, {requests / wall:.0f} requests/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--chunk-mib", type=int, default=0, help="0: the client's default")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    with tempfile.TemporaryDirectory() as tmp, DistributionProcess(Path(tmp)) as registry:
        chunk = args.chunk_mib * MiB or None
        asyncio.run(bench_blob(registry.url, args.size_mib, chunk))
        asyncio.run(bench_head(registry.url, args.requests, 16))


if __name__ == "__main__":
    main()
