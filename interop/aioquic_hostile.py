"""Hostile HTTP/3 clients built on aioquic, for __test__/hostile-peers.spec.ts.
Each case breaks a rule aioquic itself keeps (it is patched where needed) and
prints one JSON line with what happened to its connection:

  python aioquic_hostile.py CASE --port P --ca cert.pem [options]

  streams-beyond-limit [--count N]
      ignores the server's stream limit and opens N request streams at once;
      prints {"case", "answered", "close_code", "frame_type", "reason"}.
  slowloris [--count N] [--seconds S] [--interval-ms MS] [--first-request]
      opens N request streams whose HEADERS frames never end: after a first
      few bytes, one more byte per stream every MS ms for S seconds (none to
      a stream the server stopped), then the client vanishes without closing;
      prints {"case", "bytes_sent", "close_code", "reason", "closed_after_ms",
      "stopped", "reset", "reset_codes", "stopped_after_ms"} (close_code
      null: the server kept the connection open; stopped_after_ms: when the
      first and the last STOP_SENDING came). With --first-request, a whole
      request comes first ("first_status").
  hang-mid-body [--post-bytes N]
      sends POST /upload headers and N bytes of body without FIN, prints
      {"event": "sent"} and then waits forever; the test kills the process.
  never-read [--path /p] [--seconds S]
      requests PATH and never grants more flow-control credit (as a client
      that stops reading would); prints {"case", "status", "received"} after
      S seconds.
"""

import argparse
import asyncio
import os
import time

from aioquic.asyncio import connect
from aioquic.h3.connection import FrameType, encode_frame
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import StopSendingReceived, StreamReset
from aioquic.buffer import encode_uint_var

from aioquic_peer import ClientProtocol, add_connection_args, client_config, emit


def request_headers(authority, method=b"GET", path=b"/"):
    return [(b":method", method), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path)]


def closed(client, started=None):
    """The connection's end as JSON fields (nulls while it is open)."""
    end = client.terminated
    result = {
        "close_code": end.error_code if end else None,
        "frame_type": end.frame_type if end else None,
        "reason": end.reason_phrase if end else None,
    }
    if started is not None:
        result["closed_after_ms"] = round((client.terminated_at - started) * 1000) if end else None
    return result


async def streams_beyond_limit(client, args):
    # aioquic holds back streams over the peer's MAX_STREAMS; pretend it granted plenty.
    client._quic._remote_max_streams_bidi = 1 << 40
    requests = [client.request(args.server_name, f"/{i}", None) for i in range(args.count)]
    results = await asyncio.gather(*requests, return_exceptions=True)
    answered = sum(1 for r in results if isinstance(r, dict) and r["status"] == 200)
    return {"answered": answered, **closed(client)}


async def slowloris(client, args):
    first = {}
    if args.first_request:
        first = {"first_status": (await client.request(args.server_name, "/", None))["status"]}
    # A real QPACK header block, padded so that dribbling never completes it.
    pad = b"a" * (args.seconds * 1000 // args.interval_ms + 64)
    block = client.h3._encoder.encode(0, request_headers(args.server_name) + [(b"x-pad", pad)])[1]
    frame = encode_uint_var(FrameType.HEADERS) + encode_uint_var(len(block)) + block
    streams = [client._quic.get_next_available_stream_id() + 4 * i for i in range(args.count)]
    # The frame's type, length and a few bytes of the block first, then one byte per round.
    pieces = [frame[:8]] + [frame[i : i + 1] for i in range(8, len(frame) - 1)]
    sent = 0
    started = time.monotonic()
    for piece in pieces:
        for stream_id in streams:
            if stream_id in client.stopped:
                continue
            client._quic.send_stream_data(stream_id, piece)
            sent += len(piece)
        client.transmit()
        await asyncio.sleep(args.interval_ms / 1000)
        if client.terminated or time.monotonic() - started >= args.seconds:
            break
    stops = sorted(client.stopped.values())
    return {
        "bytes_sent": sent,
        **closed(client, started),
        **first,
        "stopped": len(client.stopped),
        "reset": len(client.reset_codes),
        "reset_codes": sorted(set(client.reset_codes.values())),
        "stopped_after_ms": [round((stops[0] - started) * 1000), round((stops[-1] - started) * 1000)] if stops else None,
    }


async def hang_mid_body(client, args):
    stream_id = client._quic.get_next_available_stream_id()
    client.h3.send_headers(stream_id, request_headers(args.server_name, b"POST", b"/upload"))
    client.h3.send_data(stream_id, bytes(args.post_bytes), end_stream=False)
    client.transmit()
    emit({"event": "sent"})
    await asyncio.Event().wait()


async def never_read(client, args):
    # aioquic grants credit as data arrives; a client that stopped reading grants none.
    QuicConnection._write_connection_limits = lambda *_, **__: None
    QuicConnection._write_stream_limits = lambda *_, **__: None
    task = asyncio.ensure_future(client.request(args.server_name, args.path, None))
    await asyncio.sleep(args.seconds)
    state = next(iter(client.waiters.values()))
    status = dict(state["headers"]).get(b":status", b"0")
    task.cancel()
    return {"status": int(status), "received": state["size"]}


CASES = {
    "streams-beyond-limit": streams_beyond_limit,
    "slowloris": slowloris,
    "hang-mid-body": hang_mid_body,
    "never-read": never_read,
}


class HostileProtocol(ClientProtocol):
    terminated_at = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stopped = {}  # stream id -> when STOP_SENDING came
        self.reset_codes = {}  # stream id -> RESET_STREAM's code

    def quic_event_received(self, event):
        if isinstance(event, StopSendingReceived):
            self.stopped.setdefault(event.stream_id, time.monotonic())
        if isinstance(event, StreamReset):
            self.reset_codes[event.stream_id] = event.error_code
        was_open = self.terminated is None
        super().quic_event_received(event)
        if was_open and self.terminated is not None:
            self.terminated_at = time.monotonic()


async def run(args):
    config = client_config(args)
    async with connect(args.host, args.port, configuration=config, create_protocol=HostileProtocol) as client:
        result = await CASES[args.case](client, args)
        emit({"case": args.case, **result})
        if args.case == "slowloris":
            # Vanish without CONNECTION_CLOSE: the server holds the connection until it decides.
            os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=CASES)
    add_connection_args(parser)
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--post-bytes", type=int, default=100_000)
    parser.add_argument("--path", default="/endless")
    parser.add_argument("--first-request", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
