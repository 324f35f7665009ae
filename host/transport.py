"""Byte transports chosen by URL, and a fault-injecting wrapper for tests.

A transport moves bytes and nothing else: ``write(data)`` sends, ``read(timeout)`` returns the
bytes that arrived within ``timeout`` seconds (``b""`` if none; it never blocks longer), and
``close()``. The protocol and its retries live above, in :mod:`host.board`.

URLs (:func:`open_transport`):

- ``socket://HOST:PORT`` -- the simulated board (``tensorfab serve``), over TCP.
- ``serial://DEVICE[?baud=N]`` or a device path (``/dev/ttyUSB0``, ``COM3``) -- a board's UART,
  through pyserial (default 3000000 baud, the designs' default ``link.uart``).
- ``model://CONFIG`` -- the Python reference board (:mod:`host.model`) in this process.
"""

from __future__ import annotations

import random
import socket
import time
from urllib.parse import parse_qs, urlsplit

from generators.errors import UserError

__all__ = ["Transport", "SocketTransport", "SerialTransport", "ModelTransport",
           "FaultyTransport", "open_transport", "ALLOWED_URLS", "DEFAULT_BAUD"]

ALLOWED_URLS = ("socket://HOST:PORT, serial://DEVICE[?baud=N] or a device path such as "
                "/dev/ttyUSB0, model://CONFIG.yaml")
#: A serial port's line rate when the URL gives none: the board designs' default ``link.uart``
#: (a literal, so the driver starts without pydantic; tests/test_host_protocol.py checks it).
DEFAULT_BAUD = 3_000_000


class Transport:
    """Base class: a byte pipe to a board."""

    url = ""
    #: Cycles per second the board's units run at, as far as this transport knows (used to
    #: wait long enough for a RUN); None: take the design's ``clock_hz``.
    cycles_per_second: float | None = None

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SocketTransport(Transport):
    """TCP to the simulated board. Verilator runs far slower than a board's clock, so RUN waits
    assume ``cycles_per_second`` (default 100 000) rather than the design's clock."""

    def __init__(self, url: str, host: str, port: int, timeout: float,
                 cycles_per_second: float = 1e5):
        self.url = url
        self.cycles_per_second = cycles_per_second
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as err:
            why = err.strerror or type(err).__name__
            raise UserError(f"{url}: cannot connect ({why}; is `tensorfab serve` running "
                            "there?)") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as err:
            raise UserError(f"{self.url}: connection lost ({err.strerror or err})") from None

    def read(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 1e-3))
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return b""
        except OSError as err:
            raise UserError(f"{self.url}: connection lost ({err.strerror or err})") from None
        if not data:
            raise UserError(f"{self.url}: the board closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


class SerialTransport(Transport):
    """A UART through pyserial (8N1)."""

    def __init__(self, url: str, device: str, baud: int, timeout: float):
        import serial  # local: pyserial only for serial ports

        self.url = url
        try:
            self.port = serial.Serial(device, baudrate=baud, timeout=timeout,
                                      write_timeout=max(timeout, 1.0))
        except (serial.SerialException, ValueError, OSError) as err:
            raise UserError(f"{url}: cannot open the serial device ({_one_line(err)})") from None
        self._serial = serial

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except self._serial.SerialException as err:
            raise UserError(f"{self.url}: serial write failed ({_one_line(err)})") from None

    def read(self, timeout: float) -> bytes:
        try:
            self.port.timeout = max(timeout, 1e-3)
            first = self.port.read(1)
            if not first:
                return b""
            return first + self.port.read(self.port.in_waiting)
        except self._serial.SerialException as err:
            raise UserError(f"{self.url}: serial read failed ({_one_line(err)})") from None

    def close(self) -> None:
        self.port.close()


class ModelTransport(Transport):
    """The Python reference board in this process: requests are answered as they are written.
    A read with nothing to return waits its whole timeout (nothing can arrive later)."""

    cycles_per_second = 1e7

    def __init__(self, url: str, board):
        self.url = url
        self.board = board
        self._out = bytearray()

    def write(self, data: bytes) -> None:
        self._out += self.board.feed(data)

    def read(self, timeout: float) -> bytes:
        if not self._out:
            time.sleep(timeout)
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data


class FaultyTransport(Transport):
    """Wraps a transport and damages the bytes in both directions, for reliability tests.

    Each ``write`` or ``read`` chunk is, with the given probabilities: dropped whole
    (``drop``), cut short (``truncate``), given one flipped bit (``flip``), or preceded by
    random garbage (``garbage``). ``reset_at`` lists write counts at which the board is reset
    (buffers lost) just before that write is delivered: by ``reset()`` when given (e.g. the
    simulated board's :func:`sim.board.reset`), else the wrapped reference board's own.
    ``damaged`` counts the damaged chunks, ``resets`` the resets.
    """

    def __init__(self, inner: Transport, seed: int = 0, drop: float = 0.0, flip: float = 0.0,
                 truncate: float = 0.0, garbage: float = 0.0, reset_at: tuple = (),
                 reset=None):
        self.inner = inner
        self._reset = reset
        self.url = inner.url
        self.cycles_per_second = inner.cycles_per_second
        self.rng = random.Random(seed)
        self.drop, self.flip, self.truncate, self.garbage = drop, flip, truncate, garbage
        self.reset_at = set(reset_at)
        self.writes = 0
        self.damaged = 0
        self.resets = 0

    def _damage(self, data: bytes) -> bytes:
        r = self.rng
        if not data:
            return data
        if r.random() < self.drop:
            self.damaged += 1
            return b""
        out = bytearray(data)
        if r.random() < self.truncate:
            self.damaged += 1
            out = out[:r.randrange(len(out))]
        if out and r.random() < self.flip:
            self.damaged += 1
            i = r.randrange(len(out))
            out[i] ^= 1 << r.randrange(8)
        if r.random() < self.garbage:
            self.damaged += 1
            out = bytearray(r.randbytes(r.randrange(1, 40))) + out
        return bytes(out)

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes in self.reset_at:
            self.resets += 1
            (self._reset or self.inner.board.reset)()
        self.inner.write(self._damage(data))

    def read(self, timeout: float) -> bytes:
        return self._damage(self.inner.read(timeout))

    def close(self) -> None:
        self.inner.close()


def _one_line(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def open_transport(url: str, timeout: float = 1.0) -> Transport:
    """The transport for ``url`` (see the module docstring).

    Raises
    ------
    UserError
        One line naming the URL and what is allowed: unknown scheme, missing port, a device
        or config that cannot be opened.
    """
    if not isinstance(url, str) or not url:
        raise UserError(f"{url!r}: not a board URL (allowed: {ALLOWED_URLS})")
    if "://" not in url:
        if url.startswith("/dev/") or url.upper().startswith("COM"):
            return SerialTransport(url, url, DEFAULT_BAUD, timeout)
        raise UserError(f"{url}: not a board URL (allowed: {ALLOWED_URLS})")
    scheme, rest = url.split("://", 1)
    if scheme == "socket":
        parts = urlsplit(url)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host, port = None, None
        if not host or port is None or parts.path not in ("", "/"):
            raise UserError(f"{url}: expected socket://HOST:PORT with a port number "
                            "(e.g. socket://localhost:5555)")
        return SocketTransport(url, host, port, timeout)
    if scheme == "serial":
        device, _, query = rest.partition("?")
        if not device:
            raise UserError(f"{url}: expected serial://DEVICE[?baud=N] (e.g. "
                            "serial:///dev/ttyUSB0?baud=3000000)")
        try:
            q = parse_qs(query, strict_parsing=bool(query))
            extra = sorted(set(q) - {"baud"})
            baud = int(q.get("baud", [DEFAULT_BAUD])[0])
        except ValueError:
            extra, baud = ["?"], 0
        if extra or baud <= 0:
            raise UserError(f"{url}: bad serial options (allowed: ?baud=N with N > 0)")
        return SerialTransport(url, device, baud, timeout)
    if scheme == "model":
        if not rest:
            raise UserError(f"{url}: expected model://CONFIG.yaml (a board design or a unit "
                            "config)")
        # local: the reference board reads configs (pydantic) and builds its description
        from .model import ModelBoard, board_config

        try:
            return ModelTransport(url, ModelBoard(board_config(rest)))
        except UserError as err:
            msg = str(err)
            msg = msg[len(rest) + 2:] if msg.startswith(rest + ": ") else msg
            raise UserError(f"{url}: {msg}") from None
    raise UserError(f"{url}: unknown URL scheme {scheme!r} (allowed: {ALLOWED_URLS})")
