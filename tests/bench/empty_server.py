"""The gRPC ceiling: a minimal grpc.aio server (same grpcio as miaopi) with one unary method
that returns an empty message, driven by h2load exactly like miaopi's Decide.

    python -m tests.bench.empty_server --listen 127.0.0.1:0 --port-file P --stats-file S

Method: /bench.v1.Empty/Call, request and response google.protobuf.Empty. It writes the bound
port to --port-file once serving, and on SIGTERM/SIGINT the number of calls it answered to
--stats-file (so the runner can check that every h2load request really got grpc-status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

SERVICE = "bench.v1.Empty"
METHOD = f"/{SERVICE}/Call"


async def serve(listen: str, port_file: Path, stats_file: Path | None) -> None:
    calls = 0

    async def call(request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        nonlocal calls
        calls += 1
        return empty_pb2.Empty()

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=empty_pb2.Empty.FromString,
        response_serializer=empty_pb2.Empty.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Call": handler}),)
    )
    port = server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port_file.write_text(str(port))
    await stop.wait()
    await server.stop(1)
    if stats_file is not None:
        stats_file.write_text(json.dumps({"calls": calls}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--port-file", type=Path, required=True)
    p.add_argument("--stats-file", type=Path)
    a = p.parse_args()
    asyncio.run(serve(a.listen, a.port_file, a.stats_file))


if __name__ == "__main__":
    main()
