"""A signaling client that joins a room, stops reading for a while, then reads again.

Its socket's receive buffer is made tiny before connecting, so what the server sends while
it does not read backs up into the server within a few hundred messages. Prints one JSON
line: the `leave` reason if the server ended the session, and the tracks it was told of
(announced and not unpublished since), once nothing has arrived for a second.

usage: paused-reader.py HOST PORT ROOM PAUSE_SECONDS READ_SECONDS
"""

import base64
import json
import os
import socket
import sys
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


class Reader:
    """Unmasked server frames from a socket, after the HTTP upgrade response."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self, n: int) -> bool:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def skip_upgrade(self) -> None:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(len(self.buffer) + 1):
                raise SystemExit("closed during the upgrade")
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]

    def message(self):
        """The next text message as JSON, or None when the connection closed."""
        while True:
            if not self._fill(2):
                return None
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = 2
            if length == 126:
                if not self._fill(4):
                    return None
                length, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if not self._fill(10):
                    return None
                length, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if not self._fill(start + length):
                return None
            payload, self.buffer = self.buffer[start:start + length], self.buffer[start + length:]
            if opcode == 0x8:
                return None
            if opcode == 0x1:
                return json.loads(payload)


def main() -> None:
    host, port, room = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pause, read_for = float(sys.argv[4]), float(sys.argv[5])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.sendall(frame(json.dumps({"type": "join", "room": room, "name": "paused"})))
    reader = Reader(sock)
    reader.skip_upgrade()
    joined = reader.message()
    if not joined or joined.get("type") != "joined":
        raise SystemExit(f"not joined: {joined}")
    print(json.dumps({"joined": joined["participant_id"]}), flush=True)
    time.sleep(pause)
    tracks, leave, messages = set(), None, 0
    deadline = time.monotonic() + read_for
    sock.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            message = reader.message()
        except socket.timeout:
            break
        if message is None:
            break
        messages += 1
        kind = message.get("type")
        if kind == "track_published":
            tracks.add(message["track"]["id"])
        elif kind == "track_unpublished":
            tracks.discard(message["track_id"])
        elif kind == "leave":
            leave = message["reason"]
            break
    print(json.dumps({"leave": leave, "tracks": sorted(tracks), "messages": messages}), flush=True)


main()
