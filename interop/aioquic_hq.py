"""aioquic's hq-interop (HTTP/0.9 over QUIC, the QUIC interop runner's
protocol, aioquic.h0) as a client and server for __test__/hq-interop.spec.ts.

  python aioquic_hq.py server --cert cert.pem --key key.pem --root DIR
      prints "listening <port>"; answers "GET /<file>" with the file under
      DIR, or resets the stream (code 0x4) when there is none.
  python aioquic_hq.py client --port P --ca cert.pem --paths-file F
      [--server-name N] [--concurrency N]
      requests every path in F (one per line) on one connection, at most N
      at a time, and prints one JSON line per response: {"path", "size",
      "sha256"} or {"path", "reset_code"}; then {"done": count}.
"""

import argparse
import asyncio
import hashlib
import json
import os
import ssl

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h0.connection import H0_ALPN, H0Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset

NOT_FOUND = 0x4


def emit(obj):
    print(json.dumps(obj), flush=True)


class HqServer(QuicConnectionProtocol):
    root = "."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h0 = H0Connection(self._quic)

    def quic_event_received(self, event):
        for h0_event in self._h0.handle_event(event):
            if isinstance(h0_event, HeadersReceived):
                path = dict(h0_event.headers)[b":path"].decode()
                self.respond(h0_event.stream_id, path)

    def respond(self, stream_id, path):
        root = os.path.realpath(self.root)
        file = os.path.realpath(os.path.join(root, path.lstrip("/")))
        if not file.startswith(root + os.sep) or not os.path.isfile(file):
            self._quic.reset_stream(stream_id, NOT_FOUND)
        else:
            with open(file, "rb") as f:
                self._h0.send_data(stream_id, f.read(), end_stream=True)
        self.transmit()


class HqClient(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h0 = H0Connection(self._quic)
        self._pending = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset) and event.stream_id in self._pending:
            _, waiter = self._pending.pop(event.stream_id)
            waiter.set_result({"reset_code": event.error_code})
            return
        for h0_event in self._h0.handle_event(event):
            if isinstance(h0_event, DataReceived) and h0_event.stream_id in self._pending:
                hash_and_size, waiter = self._pending[h0_event.stream_id]
                hash_and_size[0].update(h0_event.data)
                hash_and_size[1] += len(h0_event.data)
                if h0_event.stream_ended:
                    del self._pending[h0_event.stream_id]
                    waiter.set_result({"size": hash_and_size[1], "sha256": hash_and_size[0].hexdigest()})

    async def get(self, authority, path):
        stream_id = self._quic.get_next_available_stream_id()
        waiter = self._loop.create_future()
        self._pending[stream_id] = ([hashlib.sha256(), 0], waiter)
        self._h0.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path.encode())], end_stream=True)
        self.transmit()
        return {"path": path, **(await waiter)}


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=H0_ALPN)
    config.load_cert_chain(args.cert, args.key)
    HqServer.root = args.root
    server = await serve(args.host, args.port, configuration=config, create_protocol=HqServer)
    print(f"listening {server._transport.get_extra_info('sockname')[1]}", flush=True)
    await asyncio.Future()


async def run_client(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=H0_ALPN, server_name=args.server_name)
    config.load_verify_locations(args.ca)
    config.verify_mode = ssl.CERT_REQUIRED
    with open(args.paths_file) as f:
        paths = [line.strip() for line in f if line.strip()]
    async with connect(args.host, args.port, configuration=config, create_protocol=HqClient) as client:
        limit = asyncio.Semaphore(args.concurrency)

        async def one(path):
            async with limit:
                emit(await client.get(args.server_name, path))

        await asyncio.gather(*(one(p) for p in paths))
        emit({"done": len(paths)})


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--root", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--server-name", default="localhost")
    c.add_argument("--paths-file", required=True)
    c.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run_server(args) if args.mode == "server" else run_client(args))


if __name__ == "__main__":
    main()
