"""An aioquic (independent Python QUIC/HTTP/3 stack) client and server for
the interop specs in __test__/interop.spec.ts.

  python aioquic_peer.py server --cert cert.pem --key key.pem
      prints "listening <port>"; serves GET /hello, GET /bytes/<n> (with an
      x-sha256 header), POST /echo (echoes the body, x-sha256 of it).
  python aioquic_peer.py client --port P --ca cert.pem [--server-name N]
      [--path /p] [--count N] [--post-bytes N] [--cipher chacha20]
      [--reset-request CODE]
      runs the requests concurrently on one connection and prints one JSON
      line per response: {"path", "status", "size", "sha256", "headers",
      "trailers", "reset_code", "cipher", "retry"}; with --reset-request each
      request sends part of a body and then resets its stream.
  python aioquic_peer.py client --port P --ca cert.pem --resume
      gets a session ticket, then resumes with the request in 0-RTT data and
      prints that response with "resumed" and "early_data_accepted".
  python aioquic_peer.py client --port P --ca cert.pem --malformed CASE
      sends one hostile input (see MALFORMED) and prints {"case",
      "close_code", "reason"} or, where the input must be ignored, the response.
"""

import argparse
import asyncio
import hashlib
import json
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, StreamReset
from aioquic.tls import CipherSuite


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


class ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = None
        self.requests = {}

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated):
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for ev in self.h3.handle_event(event):
            if isinstance(ev, HeadersReceived):
                self.requests[ev.stream_id] = {"headers": dict(ev.headers), "body": bytearray()}
            elif isinstance(ev, DataReceived) and ev.stream_id in self.requests:
                self.requests[ev.stream_id]["body"] += ev.data
            if getattr(ev, "stream_ended", False) and ev.stream_id in self.requests:
                self.respond(ev.stream_id, self.requests.pop(ev.stream_id))

    def respond(self, stream_id, request):
        path = request["headers"].get(b":path", b"/").decode()
        if path.startswith("/bytes/"):
            body = pattern(int(path[len("/bytes/"):]))
        elif path.startswith("/echo"):
            body = bytes(request["body"])
        else:
            body = b"hello from aioquic"
        self.h3.send_headers(
            stream_id,
            [
                (b":status", b"200"),
                (b"content-length", str(len(body)).encode()),
                (b"x-sha256", hashlib.sha256(body).hexdigest().encode()),
                (b"x-request-bytes", str(len(request["body"])).encode()),
            ],
        )
        self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.terminated = None

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for state in self.waiters.values():
                if not state["done"].done():
                    state["done"].set_result(None)
        if isinstance(event, StreamReset) and event.stream_id in self.waiters:
            state = self.waiters[event.stream_id]
            state["reset_code"] = event.error_code
            if not state["done"].done():
                state["done"].set_result(None)
        for ev in self.h3.handle_event(event):
            state = self.waiters.get(getattr(ev, "stream_id", None))
            if state is None:
                continue
            if isinstance(ev, HeadersReceived) and state["size"] > 0:
                state["trailers"] += ev.headers
            elif isinstance(ev, HeadersReceived):
                state["headers"] += ev.headers
            elif isinstance(ev, DataReceived):
                state["hash"].update(ev.data)
                state["size"] += len(ev.data)
            if getattr(ev, "stream_ended", False) and not state["done"].done():
                state["done"].set_result(None)

    async def request(self, authority, path, body, reset_code=None):
        return await self.request_on(self._quic.get_next_available_stream_id(), authority, path, body, reset_code)

    async def request_on(self, stream_id, authority, path, body=None, reset_code=None):
        state = self.waiters[stream_id] = {
            "headers": [],
            "trailers": [],
            "hash": hashlib.sha256(),
            "size": 0,
            "reset_code": None,
            "done": self._loop.create_future(),
        }
        method = b"POST" if body is not None else b"GET"
        self.h3.send_headers(
            stream_id,
            [(b":method", method), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path.encode())],
            end_stream=body is None and reset_code is None,
        )
        if reset_code is not None:
            # Start a request body, then abandon it: RESET_STREAM with reset_code.
            self.h3.send_data(stream_id, b"partial", end_stream=False)
            self.transmit()
            await asyncio.sleep(0.2)
            self._quic.reset_stream(stream_id, reset_code)
            self.transmit()
            await asyncio.sleep(0.2)
            return {"path": path, "reset_sent": reset_code}
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        await asyncio.wait_for(state["done"], 60)
        headers = {k.decode(): v.decode() for k, v in state["headers"]}
        return {
            "path": path,
            "status": int(headers.get(":status", "0")),
            "size": state["size"],
            "sha256": state["hash"].hexdigest(),
            "headers": headers,
            "trailers": {k.decode(): v.decode() for k, v in state["trailers"]},
            "reset_code": state["reset_code"],
        }


# Hostile inputs: each sends raw HTTP/3 bytes the peer must refuse (or, for
# unknown-frame, ignore). RFC 9114 says which error each deserves.
MALFORMED = {
    # A reserved frame type before HEADERS must be ignored (§9): the request succeeds.
    "unknown-frame": encode_frame(0x21, b"ignore me"),
    # DATA before HEADERS on a request stream: H3_FRAME_UNEXPECTED (0x105).
    "data-before-headers": encode_frame(FrameType.DATA, b"x"),
    # A HEADERS block QPACK cannot decode: H3_QPACK_DECOMPRESSION_FAILED (0x200).
    "bad-qpack": encode_frame(FrameType.HEADERS, b"\xff\xff\xff\xff"),
}


async def run_malformed(client, case, authority):
    """Runs one hostile case; reports the connection's end or the response."""
    if case == "duplicate-settings":
        # A second SETTINGS on the control stream: H3_FRAME_UNEXPECTED (0x105).
        client._quic.send_stream_data(client.h3._local_control_stream_id, encode_frame(FrameType.SETTINGS, b""))
        client.transmit()
        result = {}
    else:
        stream_id = client._quic.get_next_available_stream_id()
        client._quic.send_stream_data(stream_id, MALFORMED[case])
        result = {}
        if case == "unknown-frame":
            result = await client.request_on(stream_id, authority, "/")
        else:
            client.transmit()
    # Give the peer up to 3 s to close the connection (not needed once answered).
    for _ in range(0 if result else 30):
        if client.terminated:
            break
        await asyncio.sleep(0.1)
    result.update(case=case)
    if client.terminated:
        result.update(close_code=client.terminated.error_code, reason=client.terminated.reason_phrase)
    return result


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    config.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=config, create_protocol=ServerProtocol)
    print(f"listening {server._transport.get_extra_info('sockname')[1]}", flush=True)
    await asyncio.Event().wait()


def client_config(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=args.server_name)
    config.load_verify_locations(args.ca)
    config.verify_mode = ssl.CERT_REQUIRED
    if args.cipher == "chacha20":
        config.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
    return config


async def run_resumption(args):
    """Connects once to get a session ticket, then again resuming it and
    sending the request as 0-RTT data; reports how the second one went."""
    tickets = []
    async with connect(args.host, args.port, configuration=client_config(args), create_protocol=ClientProtocol,
                       session_ticket_handler=tickets.append) as first:
        await first.request(args.server_name, "/first", None)
        for _ in range(20):
            if tickets:
                break
            await asyncio.sleep(0.05)
    if not tickets:
        raise SystemExit("the server issued no session ticket")
    config = client_config(args)
    config.session_ticket = tickets[-1]
    async with connect(args.host, args.port, configuration=config, create_protocol=ClientProtocol,
                       wait_connected=False) as second:
        result = await second.request(args.server_name, "/early", None)
        tls = second._quic.tls
        result.update(resumed=tls.session_resumed, early_data_accepted=tls.early_data_accepted)
        if second.terminated:
            result.update(close_code=second.terminated.error_code, reason=second.terminated.reason_phrase)
        print(json.dumps(result), flush=True)


async def run_client(args):
    if args.resume:
        return await run_resumption(args)
    config = client_config(args)
    body = pattern(args.post_bytes) if args.post_bytes is not None else None
    async with connect(args.host, args.port, configuration=config, create_protocol=ClientProtocol) as client:
        if args.malformed:
            print(json.dumps(await run_malformed(client, args.malformed, args.server_name)), flush=True)
            return
        paths = [args.path.replace("{i}", str(i)) for i in range(args.count)]
        results = await asyncio.gather(*(client.request(args.server_name, p, body, args.reset_request) for p in paths))
        cipher = client._quic.tls.key_schedule.cipher_suite.name if client._quic.tls.key_schedule else None
        for result in results:
            # _retry_count: whether the server made us prove our address first.
            result.update(cipher=cipher, retry=client._quic._retry_count > 0)
            print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--server-name", default="localhost")
    c.add_argument("--path", default="/")
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--post-bytes", type=int)
    c.add_argument("--cipher", choices=["default", "chacha20"], default="default")
    c.add_argument("--reset-request", type=int, help="send part of a body, then RESET_STREAM with this code")
    c.add_argument("--resume", action="store_true", help="resume a session and send the request as 0-RTT")
    c.add_argument("--malformed", choices=[*MALFORMED, "duplicate-settings"], help="send one hostile input instead")
    args = parser.parse_args()
    asyncio.run(run_server(args) if args.mode == "server" else run_client(args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
