"""An aioquic (independent Python QUIC/HTTP/3 stack) client and server for
the interop specs in __test__/interop.spec.ts.

  python aioquic_peer.py server --cert cert.pem --key key.pem [--goaway-after N]
      prints "listening <port>"; serves GET /hello, GET /bytes/<n> (with an
      x-sha256 header), POST /echo (echoes the body, x-sha256 of it),
      /slow/<n> (half the body now, the rest 0.5 s later), /reset/<code>
      (HEADERS and some DATA, then RESET_STREAM with code), /key-update/<n>
      (like /bytes/<n>, with a key update started mid-body) and /key-phase
      (its 1-RTT key phase and key updates so far, as JSON). Prints one JSON
      line per RESET_STREAM or STOP_SENDING it receives. With --goaway-after
      N it sends GOAWAY once N requests have arrived.
  python aioquic_peer.py client --port P --ca cert.pem [--server-name N]
      [--path /p] [--count N] [--post-bytes N] [--cipher chacha20]
      [--reset-request CODE] [--after-goaway PATH] [--key-update-after BYTES]
      [--rebind]
      runs the requests concurrently on one connection and prints one JSON
      line per response: {"path", "status", "size", "sha256", "headers",
      "trailers", "reset_code", "cipher", "retry", "goaway_ids",
      "goaway_before_end", "connection", "local_port", "key_phase",
      "key_updates", "bytes_at_key_update"}; with --reset-request each
      request sends part of a body and then resets its stream. With
      --after-goaway, PATH is requested once the others end, on a new
      connection if the server sent GOAWAY. With --key-update-after, the
      client starts a key update once BYTES of body have arrived. With
      --rebind, the requests run again from a new UDP socket (same
      connection).
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

import socket

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.buffer import Buffer, BufferReadError, encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, StreamType, encode_frame
from aioquic.h3.events import DataReceived, DatagramReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.events import ConnectionTerminated, ProtocolNegotiated, StopSendingReceived, StreamDataReceived, StreamReset
from aioquic.tls import CipherSuite, Epoch


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def emit(obj):
    print(json.dumps(obj), flush=True)


# aioquic keeps no record of key updates; count them per CryptoPair, with
# their trigger ("local_update": we started it, "remote_update": the peer did).
_update_key = CryptoPair._update_key


def _counting_update_key(self, trigger):
    self.key_updates = [*getattr(self, "key_updates", []), trigger]
    _update_key(self, trigger)


CryptoPair._update_key = _counting_update_key


def key_state(quic):
    """The 1-RTT key phase and the key updates so far."""
    crypto = quic._cryptos[Epoch.ONE_RTT]
    return {"key_phase": crypto.key_phase, "key_updates": getattr(crypto, "key_updates", [])}


def start_key_update(protocol):
    protocol._quic.request_key_update()
    protocol.transmit()


class ServerProtocol(QuicConnectionProtocol):
    goaway_after = None
    # H3 DATAGRAM (RFC 9297): advertise SETTINGS_H3_DATAGRAM (aioquic ties it
    # to its WebTransport switch), answer CONNECT, echo each datagram.
    datagrams = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = None
        self.requests = {}
        self.request_count = 0

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated):
            self.h3 = H3Connection(self._quic, enable_webtransport=self.datagrams)
        if isinstance(event, StreamReset):
            emit({"event": "stream_reset", "stream_id": event.stream_id, "error_code": event.error_code})
        if isinstance(event, StopSendingReceived):
            emit({"event": "stop_sending", "stream_id": event.stream_id, "error_code": event.error_code})
        if self.h3 is None:
            return
        for ev in self.h3.handle_event(event):
            if isinstance(ev, DatagramReceived):
                emit({"event": "datagram", "stream_id": ev.stream_id, "size": len(ev.data)})
                self.h3.send_datagram(ev.stream_id, b"echo:" + ev.data)
                self.transmit()
                continue
            if isinstance(ev, HeadersReceived) and dict(ev.headers).get(b":method") == b"CONNECT":
                self.h3.send_headers(ev.stream_id, [(b":status", b"200"), (b"capsule-protocol", b"?1")])
                self.transmit()
                continue
            if isinstance(ev, HeadersReceived):
                self.requests[ev.stream_id] = {"headers": dict(ev.headers), "body": bytearray()}
                self.request_count += 1
                if self.request_count == self.goaway_after:
                    self.send_goaway(ev.stream_id + 4)
            elif isinstance(ev, DataReceived) and ev.stream_id in self.requests:
                self.requests[ev.stream_id]["body"] += ev.data
            if getattr(ev, "stream_ended", False) and ev.stream_id in self.requests:
                self.respond(ev.stream_id, self.requests.pop(ev.stream_id))

    def send_goaway(self, first_unprocessed):
        """GOAWAY (aioquic has no API for it): requests from stream id
        `first_unprocessed` on will not be processed (RFC 9114 §5.2)."""
        emit({"event": "goaway_sent", "id": first_unprocessed})
        self._quic.send_stream_data(self.h3._local_control_stream_id, encode_frame(FrameType.GOAWAY, encode_uint_var(first_unprocessed)))
        self.transmit()

    def respond(self, stream_id, request):
        path = request["headers"].get(b":path", b"/").decode()
        name, _, arg = path[1:].partition("/")
        if name in ("bytes", "slow", "key-update"):
            body = pattern(int(arg))
        elif name == "echo":
            body = bytes(request["body"])
        elif name == "key-phase":
            body = json.dumps(key_state(self._quic)).encode()
        elif name == "reset":
            self.h3.send_headers(stream_id, [(b":status", b"200")])
            self.h3.send_data(stream_id, b"partial body", end_stream=False)
            self.transmit()
            # Later, so the HEADERS reach the client before the reset does.
            self._loop.call_later(0.2, self.reset, stream_id, int(arg))
            return
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
        if name == "slow":
            half = len(body) // 2
            self.h3.send_data(stream_id, body[:half], end_stream=False)
            self._loop.call_later(0.5, self.finish, stream_id, body[half:])
        else:
            self.h3.send_data(stream_id, body, end_stream=True)
        if name == "key-update":
            # The body is queued, not sent yet: the update lands mid-body.
            self._loop.call_later(0.05, start_key_update, self)
        self.transmit()

    def finish(self, stream_id, rest):
        self.h3.send_data(stream_id, rest, end_stream=True)
        self.transmit()

    def reset(self, stream_id, code):
        self._quic.reset_stream(stream_id, code)
        self.transmit()


def goaway_ids(data):
    """The GOAWAY ids in a peer's control stream so far (aioquic's H3 layer
    discards GOAWAY, so the client reads the stream's bytes itself)."""
    buf, ids = Buffer(data=bytes(data)), []
    try:
        if buf.pull_uint_var() != StreamType.CONTROL:
            return []
        while not buf.eof():
            frame_type, length = buf.pull_uint_var(), buf.pull_uint_var()
            payload = buf.pull_bytes(length)
            if frame_type == FrameType.GOAWAY:
                ids.append(Buffer(data=payload).pull_uint_var())
    except BufferReadError:
        pass  # a frame not complete yet
    return ids


class ClientProtocol(QuicConnectionProtocol):
    key_update_after = None
    datagrams = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=self.datagrams)
        self.datagrams_received = []
        self.waiters = {}
        self.terminated = None
        self.uni_streams = {}
        self.goaway_ids = []
        self.received = 0
        self.bytes_at_key_update = None

    def quic_event_received(self, event):
        # Server-initiated unidirectional streams (id % 4 == 3): the control stream among them.
        if isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self.uni_streams[event.stream_id] = self.uni_streams.get(event.stream_id, b"") + event.data
            self.goaway_ids = goaway_ids(self.uni_streams[event.stream_id]) or self.goaway_ids
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
            if isinstance(ev, DatagramReceived):
                self.datagrams_received.append((ev.stream_id, ev.data))
                continue
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
                self.received += len(ev.data)
                if self.key_update_after is not None and self.bytes_at_key_update is None and self.received >= self.key_update_after:
                    self.bytes_at_key_update = self.received
                    start_key_update(self)
            if getattr(ev, "stream_ended", False) and not state["done"].done():
                state["goaway_before_end"] = bool(self.goaway_ids)
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
            "goaway_before_end": False,
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
            "goaway_before_end": state["goaway_before_end"],
            "local_port": self._transport.get_extra_info("sockname")[1],
        }

    async def datagram_round_trip(self, authority, count):
        """Opens a CONNECT-UDP tunnel (extended CONNECT), sends `count`
        datagrams on it, resending the ones not echoed yet for a few rounds
        (datagrams may be dropped), and reports what came back."""
        stream_id = self._quic.get_next_available_stream_id()
        state = self.waiters[stream_id] = {"headers": [], "trailers": [], "hash": hashlib.sha256(), "size": 0, "done": self._loop.create_future()}
        self.h3.send_headers(stream_id, [
            (b":method", b"CONNECT"), (b":protocol", b"connect-udp"), (b":scheme", b"https"),
            (b":authority", authority.encode()), (b":path", b"/.well-known/masque/udp/192.0.2.1/443/"),
            (b"capsule-protocol", b"?1"),
        ])
        self.transmit()
        for _ in range(50):
            if state["headers"]:
                break
            await asyncio.sleep(0.05)
        sent = [f"datagram {i} ".encode() + b"x" * (i * 40) for i in range(count)]
        echoed = set()
        for _ in range(5):
            for data in sent:
                if b"echo:" + data not in echoed:
                    self.h3.send_datagram(stream_id, data)
            self.transmit()
            await asyncio.sleep(0.3)
            echoed |= {data for sid, data in self.datagrams_received if sid == stream_id}
            if len(echoed) == len(sent):
                break
        headers = {k.decode(): v.decode() for k, v in state["headers"]}
        return {
            "status": int(headers.get(":status", "0")),
            "stream_id": stream_id,
            "sent": len(sent),
            "echoed": sorted(d.decode() for d in echoed),
            "all_echoed": echoed == {b"echo:" + d for d in sent},
        }

    async def rebind(self):
        """NAT rebinding as aioquic's own interop client does it: the same
        connection continues from a new UDP socket (a new local port)."""
        self._transport.close()
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0, 0, 0))
        await self._loop.create_datagram_endpoint(lambda: self, sock=sock)


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
    ServerProtocol.goaway_after = args.goaway_after
    ServerProtocol.datagrams = args.datagrams
    # Session tickets, so clients can resume (aioquic issues none without a store).
    tickets = {}

    def ticket_issued(ticket):
        tickets[ticket.ticket] = ticket
        emit({"event": "ticket_issued"})

    def ticket_used(label):
        ticket = tickets.pop(label, None)
        emit({"event": "ticket_used" if ticket else "ticket_unknown"})
        return ticket

    server = await serve(args.host, args.port, configuration=config, create_protocol=ServerProtocol,
                         session_ticket_handler=ticket_issued, session_ticket_fetcher=ticket_used)
    print(f"listening {server._transport.get_extra_info('sockname')[1]}", flush=True)
    await asyncio.Event().wait()


def add_connection_args(parser):
    """The options `client_config` and `connect` read; aioquic_hostile.py takes them too."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--cipher", choices=["default", "chacha20"], default="default")


def client_config(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=args.server_name, idle_timeout=10)  # seconds of silence before giving up
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
    ClientProtocol.key_update_after = args.key_update_after
    ClientProtocol.datagrams = args.datagrams is not None
    if args.datagrams is not None:
        config.max_datagram_frame_size = 65536
    async with connect(args.host, args.port, configuration=config, create_protocol=ClientProtocol) as client:
        if args.datagrams is not None:
            emit(await client.datagram_round_trip(args.server_name, args.datagrams))
            return
        if args.malformed:
            emit(await run_malformed(client, args.malformed, args.server_name))
            return
        paths = [args.path.replace("{i}", str(i)) for i in range(args.count)]

        async def round():
            return await asyncio.gather(*(client.request(args.server_name, p, body, args.reset_request) for p in paths))

        results = await round()
        if args.rebind:
            await client.rebind()
            results += await round()
        if args.change_cid:
            # Active migration to a new connection ID the server issued.
            before = client._quic._peer_cid.cid.hex()
            client._quic.change_connection_id()
            client.transmit()
            after = client._quic._peer_cid.cid.hex()
            emit({"event": "cid_change", "before": before, "after": after, "spare": len(client._quic._peer_cid_available)})
            results += await round()
        for result in results:
            result.update(connection=1)
        if args.after_goaway and not client.terminated:
            if client.goaway_ids:
                # RFC 9114 §5.2: after GOAWAY, new requests go on a new connection.
                async with connect(args.host, args.port, configuration=client_config(args), create_protocol=ClientProtocol) as fresh:
                    results.append({**await fresh.request(args.server_name, args.after_goaway, None), "connection": 2})
            else:
                results.append({**await client.request(args.server_name, args.after_goaway, None), "connection": 1})
        cipher = client._quic.tls.key_schedule.cipher_suite.name if client._quic.tls.key_schedule else None
        for result in results:
            # _retry_count: whether the server made us prove our address first.
            result.update(
                cipher=cipher,
                retry=client._quic._retry_count > 0,
                goaway_ids=client.goaway_ids,
                bytes_at_key_update=client.bytes_at_key_update,
                **key_state(client._quic),
            )
            if client.terminated:
                result.update(close_code=client.terminated.error_code, reason=client.terminated.reason_phrase)
            emit(result)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--goaway-after", type=int, metavar="N", help="send GOAWAY once N requests have arrived")
    s.add_argument("--datagrams", action="store_true", help="advertise H3 DATAGRAM, answer CONNECT and echo datagrams")
    c = sub.add_parser("client")
    add_connection_args(c)
    c.add_argument("--path", default="/")
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--post-bytes", type=int)
    c.add_argument("--reset-request", type=int, help="send part of a body, then RESET_STREAM with this code")
    c.add_argument("--resume", action="store_true", help="resume a session and send the request as 0-RTT")
    c.add_argument("--malformed", choices=[*MALFORMED, "duplicate-settings"], help="send one hostile input instead")
    c.add_argument("--after-goaway", metavar="PATH", help="then request PATH, on a new connection if the server sent GOAWAY")
    c.add_argument("--key-update-after", type=int, metavar="BYTES", help="start a key update once BYTES of body have arrived")
    c.add_argument("--rebind", action="store_true", help="run the requests again from a new UDP socket")
    c.add_argument("--change-cid", action="store_true", help="run the requests again on a new connection ID")
    c.add_argument("--datagrams", type=int, metavar="N", help="open a CONNECT-UDP tunnel and round-trip N H3 datagrams instead")
    args = parser.parse_args()
    asyncio.run(run_server(args) if args.mode == "server" else run_client(args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
