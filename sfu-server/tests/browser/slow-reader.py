"""A signaling client that joins a room, then sends pings and never reads a reply.

Its socket's receive buffer is made tiny before connecting, so the server's replies back
up within a few thousand messages. Prints one JSON line: how many pings it sent and
whether the server dropped the connection (a send failing with a reset or broken pipe)
within the time given.

usage: slow-reader.py HOST PORT ROOM SECONDS
"""

import base64
import json
import os
import socket
import sys
import threading
import time


def frame(text: str) -> bytes:
    """A masked WebSocket text frame, as a client must send it."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(payload) < 126:
        header.append(0x80 | len(payload))
    else:
        header.append(0x80 | 126)
        header += len(payload).to_bytes(2, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def main() -> None:
    host, port, room, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.sendall(frame(json.dumps({"type": "join", "room": room, "name": "slow"})))
    started = time.monotonic()
    seen = b""
    while b'"joined"' not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("closed before joined")
        seen += chunk
    # From here on, nothing is read. Pings go out with blocking sends on a thread: once
    # the server stops reading too, a send blocks until the server drops the connection.
    ping = frame(json.dumps({"type": "ping", "ts": 1}))
    result = {"pings_sent": 0, "dropped": False}

    def flood() -> None:
        try:
            while True:
                sock.sendall(ping)
                result["pings_sent"] += 1
        except OSError:
            result["dropped"] = True

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    writer.join(seconds)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result), flush=True)

main()
