#!/usr/bin/env python3
"""Block write and read throughput over gRPC from another process vs a raw gRPC stream of the same bytes.

The real array daemon runs in its own process (mTLS); this process is a host (certificate role host,
``bench01``, given the BV by access control) and writes N MiB (256 MiB; --quick 8 MiB) to a BV with
``ArrayClient.write`` in 1 MiB chunks, then reads it back with ``ArrayClient.read`` (1 MiB chunks).
Reference, in the same run: an Echo server (``snaplab.v1.Echo``) in another process with the same gRPC
plumbing and mTLS (bench/grpc_common.py) that only moves bytes: the same N MiB streamed to
``Echo.Stream`` in the same 1 MiB chunks (built the way ArrayClient builds them; the server drops them
as the daemon drops a written chunk) and received from ``Echo.Download`` (the same bytes, uploaded once
before timing, same chunks). Runs are interleaved (write, raw up, read, raw
down; the order flips every repetition); figures are medians.
Ratios: write MiB/s / raw up MiB/s and read MiB/s / raw down MiB/s. Target: each >= 0.5.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import common as c
import grpc_common as g

TARGET = 0.5
CHUNK = c.MiB


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    size, reps = (8 * c.MiB, 3) if args.quick else (256 * c.MiB, 5)
    reps = args.reps or reps
    rep = c.Report("bench_grpc_io", "block I/O over gRPC (host -> array daemon) vs raw gRPC (Echo) streams",
                   args)
    rep.line(f"{c.fmt_size(size)} per run in {c.fmt_size(CHUNK)} chunks, {reps} runs per side; daemon and Echo "
             "server each in their own process, mTLS (daemon on grpc.aio, Echo on 32 threads)")

    from snaplab.san.array_client import ArrayClient

    from snaplab.v1 import echo_pb2, echo_pb2_grpc

    tmp = Path(tempfile.mkdtemp(prefix="snaplab-bench-grpcio-"))
    certs = g.BenchCerts(tmp / "certs")
    data = os.urandom(size)
    prof_out = tmp / "daemon.profile.txt" if args.profile else None
    try:
        with g.start_array(tmp / "state", certs, profile_out=prof_out) as array, \
                g.EchoProcess(tmp / "echo", certs).start() as echo:
            admin = array.client("admin")
            admin.set_licence(c.DSV, 1 << 50)
            admin.set_licence("AccessControl")
            admin.add_port(0, 0, "BENCH_PORT")
            admin.register_host(g.BenchCerts.HOST, [g.BenchCerts.HOST_WWN], platform="linux")
            admin.bind_pool(0, c.BV_POOL, "basic", 1 << 40)
            admin.bind_pool(1, c.SNAP_POOL, "dynamic", 1 << 40)
            admin.build_sra(c.SNAP_POOL, 64 * c.GiB, sdv_name="SDV_BENCH")
            admin.bind_ld("BV0", size, c.BV_POOL, "LX")
            admin.add_generations("BV0", c.SNAP_POOL, 1)
            admin.assign_access("BV0", wwn=g.BenchCerts.HOST_WWN)
            host = ArrayClient(array.target, certs.tls(g.BenchCerts.HOST), timeout=600)
            channel = echo.channel(g.BenchCerts.HOST)
            stub = echo_pb2_grpc.EchoStub(channel)

            def array_write() -> float:
                t = c.now()
                n = host.write("BV0", 0, data, chunk=CHUNK)
                dt = c.now() - t
                assert n == size, n
                return dt

            def array_read(check: bool = False) -> float:
                t = c.now()
                got = host.read("BV0", 0, size, chunk_size=CHUNK)
                dt = c.now() - t
                assert len(got) == size and (not check or got == data)
                return dt

            def raw_up(keep: bool = False) -> float:
                def chunks():  # as ArrayClient.write builds its WriteChunks
                    view = memoryview(data)
                    for pos in range(0, size, CHUNK):
                        yield echo_pb2.EchoChunk(payload=bytes(view[pos : pos + CHUNK]))

                t = c.now()
                reply = stub.Stream(chunks(), timeout=600, metadata=((g.KEEP_KEY, "1"),) if keep else None)
                dt = c.now() - t
                assert reply.size == size, reply.size
                return dt

            def raw_down(check: bool = False) -> float:
                t = c.now()
                got = b"".join(ch.payload for ch in stub.Download(
                    echo_pb2.EchoRequest(size=size, chunk_size=CHUNK), timeout=600))
                dt = c.now() - t
                assert len(got) == size and (not check or got == data)
                return dt

            # warm-up: allocates the BV's blocks (later writes replace them), gives the Echo server the
            # bytes to send back, and checks both paths carry them intact
            array_write(), raw_up(keep=True), array_read(check=True), raw_down(check=True)
            times: dict[str, list[float]] = {"write": [], "raw_up": [], "read": [], "raw_down": []}
            order = ["write", "raw_up", "read", "raw_down"]
            fns = {"write": array_write, "raw_up": raw_up, "read": array_read, "raw_down": raw_down}
            for r in range(reps):
                for side in (order if r % 2 == 0 else ["raw_up", "write", "raw_down", "read"]):
                    times[side].append(fns[side]())
            mib = size / c.MiB

            def rate(side: str) -> float:
                return mib / c.median(times[side])

            labels = {"write": "array write (ArrayClient.write -> Write)", "raw_up": "raw up (Echo.Stream)",
                      "read": "array read (ArrayClient.read <- Read)", "raw_down": "raw down (Echo.Download)"}
            for side in order:
                rep.figure(labels[side], f"{rate(side):7.1f} MiB/s  ({c.spread(times[side])})")
            rss = {"daemon": g.rss_of(array.pid), "echo": g.rss_of(echo.pid)}
            rep.figure("RSS after the runs: daemon / echo server",
                       f"{rss['daemon']['VmRSS'] / c.MiB:.0f} MiB / {rss['echo']['VmRSS'] / c.MiB:.0f} MiB")
            rep.ratio("grpc_write", rate("write") / rate("raw_up"), ">=", TARGET,
                      "array write MiB/s / raw gRPC upload MiB/s (medians)")
            rep.ratio("grpc_read", rate("read") / rate("raw_down"), ">=", TARGET,
                      "array read MiB/s / raw gRPC download MiB/s (medians)")
            host.close()
            admin.close()
            channel.close()
        if not args.quick:
            engine_only(rep, size, data)
        if prof_out is not None and prof_out.exists():
            print(prof_out.read_text())
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return rep.finish()


def engine_only(rep: c.Report, size: int, data: bytes) -> None:
    """Context: the same writes and reads on an in-process ArrayEngine (no gRPC): what the engine itself costs."""
    with c.Lab("grpcio-engine") as lab:
        lab.bv("BV0", size, svs=1)
        e = lab.engine

        def write() -> None:
            for off in range(0, size, CHUNK):
                e.write("BV0", off, data[off : off + CHUNK])

        def read() -> None:
            for off in range(0, size, CHUNK):
                e.read("BV0", off, CHUNK)

        write()
        tw = c.median(c.timed(write) for _ in range(3))
        tr = c.median(c.timed(read) for _ in range(3))
        mib = size / c.MiB
        rep.figure("context: in-process engine.write, 1 MiB calls", f"{mib / tw:7.1f} MiB/s")
        rep.figure("context: in-process engine.read, 1 MiB calls", f"{mib / tr:7.1f} MiB/s")


if __name__ == "__main__":
    sys.exit(main())
