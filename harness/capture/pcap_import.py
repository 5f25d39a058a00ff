"""Import FastCGI traffic from a pcap or pcapng file into a transcript (and write synthetic pcaps).

Standard library only: small readers written from the file formats (libpcap's
classic format in both byte orders and both time resolutions; pcapng's section
header, interface description (if_tsresol), enhanced, simple and obsolete packet
blocks), for the link types a loopback or Ethernet capture has (Ethernet with
VLAN tags, BSD loopback/NULL, raw IP, Linux cooked SLL and SLL2), IPv4 and IPv6.

TCP is reassembled per connection and per direction: segments are placed by
sequence number, so out-of-order segments wait for the gap to fill and
retransmitted bytes are taken once (the first copy wins); the FIN counts once all
data before it has arrived; an RST ends the connection at once. The side whose
port is the given port is the application; each in-order segment becomes one
write piece of the transcript. A gap that never fills is noted, and the bytes after
it are still kept.

A file that ends inside a packet (a capture cut short: tcpdump killed, a copy
interrupted), pcap and pcapng alike, is imported up to the last whole packet, and
the transcript's header says where it was cut (`truncated:`). A file that is
damaged rather than cut short (a block length that cannot be) is refused
(PcapError, with the byte offset).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from harness.capture.transcript import (
    APP_TO_WS,
    WS_TO_APP,
    CloseItem,
    ConnectionBuilder,
    RawItem,
    RecordItem,
    Transcript,
    WriteItem,
)

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1_000), b"\xa1\xb2\xc3\xd4": (">", 1_000),
               b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}  # endianness, ns per tick
PCAPNG_SHB = 0x0A0D0D0A
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_OLD, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_IPV6, LINK_SLL2 = (
    0, 1, 101, 12, 108, 113, 228, 229, 276)
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
MAX_SEGMENT = 65000


class PcapError(ValueError):
    """The file is not a pcap/pcapng file this reader understands."""


class NoTrafficError(PcapError):
    """The capture holds no TCP connection to or from the application's port."""


@dataclass(frozen=True)
class Packet:
    time_ns: int
    link_type: int
    data: bytes


# -- file formats ----------------------------------------------------------------------------


class CaptureFile:
    """The packets of a pcap or pcapng file, in file order (packets()).

    A file cut short inside a packet ends the packets there: truncated_at is then the byte offset
    where the incomplete packet (or block) begins, and packets_read says how many came before it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.truncated_at: int | None = None
        self.packets_read = 0

    def packets(self) -> Iterator[Packet]:
        with open(self.path, "rb") as stream:
            magic = stream.read(4)
            stream.seek(0)
            if magic in PCAP_MAGICS:
                reader = self._read_pcap(stream)
            elif len(magic) == 4 and struct.unpack("<I", magic)[0] == PCAPNG_SHB:
                reader = self._read_pcapng(stream)
            else:
                raise PcapError(f"not a pcap or pcapng file (it starts with {magic.hex() or 'nothing'})")
            for packet in reader:
                self.packets_read += 1
                yield packet

    def _cut(self, offset: int) -> None:
        self.truncated_at = offset

    def _read_pcap(self, stream: BinaryIO) -> Iterator[Packet]:
        header = _read_exact(stream, 24, "pcap file header")
        endian, ns_per_tick = PCAP_MAGICS[header[:4]]
        link_type = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
        while True:
            offset = stream.tell()
            record = stream.read(16)
            if not record:
                return
            if len(record) < 16:
                return self._cut(offset)
            seconds, fraction, captured, _ = struct.unpack(endian + "IIII", record)
            data = stream.read(captured)
            if len(data) < captured:
                return self._cut(offset)
            yield Packet(seconds * 1_000_000_000 + fraction * ns_per_tick, link_type, data)

    def _read_pcapng(self, stream: BinaryIO) -> Iterator[Packet]:
        endian = "<"
        interfaces: list[tuple[int, int]] = []  # (link type, ns per tick)
        while True:
            offset = stream.tell()
            head = stream.read(8)
            if not head:
                return
            if len(head) < 8:
                return self._cut(offset)
            block_type = struct.unpack(endian + "I", head[:4])[0]
            if block_type == PCAPNG_SHB:
                # The byte-order magic decides how this section (this block's length too) is read.
                magic = stream.read(4)
                if len(magic) < 4:
                    if offset == 0:
                        raise PcapError(f"truncated pcapng section header at byte offset {offset}")
                    return self._cut(offset)
                if magic not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    raise PcapError(f"pcapng section header at byte offset {offset}: byte-order magic {magic.hex()} "
                                    "is not 1a2b3c4d")
                endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
                total = struct.unpack(endian + "I", head[4:8])[0]
                if total < 28 or total % 4:
                    raise PcapError(f"pcapng section header at byte offset {offset} has length {total}")
                if len(stream.read(total - 12)) < total - 12:
                    if offset == 0:
                        raise PcapError(f"truncated pcapng section header at byte offset {offset}")
                    return self._cut(offset)
                interfaces = []
                continue
            total = struct.unpack(endian + "I", head[4:8])[0]
            if total < 12 or total % 4:
                raise PcapError(f"pcapng block at byte offset {offset} has length {total}")
            body = stream.read(total - 8)
            if len(body) < total - 8:
                return self._cut(offset)
            body = body[:-4]
            if block_type == 1 and len(body) >= 8:  # interface description
                link_type = struct.unpack(endian + "H", body[:2])[0]
                interfaces.append((link_type, _tsresol_ns(body[8:], endian)))
            elif block_type == 6 and len(body) >= 20:  # enhanced packet
                interface, high, low, captured, _ = struct.unpack(endian + "IIIII", body[:20])
                link_type, ns_per_tick = interfaces[interface] if interface < len(interfaces) else (LINK_ETHERNET, 1000)
                yield Packet(((high << 32) | low) * ns_per_tick, link_type, body[20 : 20 + captured])
            elif block_type == 3 and len(body) >= 4:  # simple packet: no time stamp
                link_type = interfaces[0][0] if interfaces else LINK_ETHERNET
                yield Packet(0, link_type, body[4:])
            elif block_type == 2 and len(body) >= 20:  # obsolete packet block
                interface, _, high, low, captured, _ = struct.unpack(endian + "HHIIII", body[:20])
                link_type, ns_per_tick = interfaces[interface] if interface < len(interfaces) else (LINK_ETHERNET, 1000)
                yield Packet(((high << 32) | low) * ns_per_tick, link_type, body[20 : 20 + captured])


def read_packets(path: str | Path) -> Iterator[Packet]:
    """The packets of a capture file (CaptureFile tells where a file cut short ends)."""
    return CaptureFile(path).packets()


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    """The file's own header: without it there is nothing to import, so a short one is an error."""
    offset = stream.tell()
    data = stream.read(size)
    if len(data) != size:
        raise PcapError(f"truncated {what} at byte offset {offset}: {len(data)} of its {size} bytes")
    return data


def _tsresol_ns(options: bytes, endian: str) -> int:
    """Nanoseconds per time-stamp tick from the if_tsresol option (default: microseconds)."""
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack(endian + "HH", options[offset : offset + 4])
        if code == 0:
            break
        value = options[offset + 4 : offset + 4 + length]
        if code == 9 and value:
            exponent = value[0]
            seconds_per_tick = 2.0 ** -(exponent & 0x7F) if exponent & 0x80 else 10.0 ** -exponent
            return max(1, round(seconds_per_tick * 1e9))
        offset += 4 + ((length + 3) & ~3)
    return 1000


# -- link, network and transport headers ------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    time_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes


def _ip_payload(packet: Packet) -> bytes | None:
    data, link = packet.data, packet.link_type
    if link == LINK_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, offset = struct.unpack(">H", data[12:14])[0], 14
        while ethertype in (0x8100, 0x88A8) and len(data) >= offset + 4:  # VLAN tags
            ethertype = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
            offset += 4
        return data[offset:] if ethertype in (0x0800, 0x86DD) else None
    if link in (LINK_NULL, LINK_LOOP):
        return data[4:]
    if link in (LINK_RAW, LINK_RAW_OLD, LINK_IPV4, LINK_IPV6):
        return data
    if link == LINK_SLL:
        return data[16:] if len(data) >= 16 and data[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if link == LINK_SLL2:
        return data[20:] if len(data) >= 20 and data[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    return None


def _format_ipv6(raw: bytes) -> str:
    import ipaddress
    return f"[{ipaddress.IPv6Address(raw)}]"


def parse_segment(packet: Packet) -> Segment | None:
    """The TCP segment in a packet, or None for anything else (fragments included)."""
    ip = _ip_payload(packet)
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20:
        header_length = (ip[0] & 0x0F) * 4
        total_length, fragment = struct.unpack(">H2xH", ip[2:8])
        if ip[9] != 6 or fragment & 0x3FFF:
            return None
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        tcp = ip[header_length:total_length] if total_length else ip[header_length:]
    elif version == 6 and len(ip) >= 40:
        payload_length, next_header = struct.unpack(">HB", ip[4:7])
        offset = 40
        while next_header in (0, 43, 60) and len(ip) >= offset + 8:  # hop-by-hop, routing, destination options
            next_header, length = ip[offset], ip[offset + 1]
            offset += (length + 1) * 8
        if next_header != 6:
            return None
        src, dst = _format_ipv6(ip[8:24]), _format_ipv6(ip[24:40])
        tcp = ip[offset : 40 + payload_length] if payload_length else ip[offset:]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, _, offset_byte, flags = struct.unpack(">HHIIBB", tcp[:14])
    return Segment(packet.time_ns, src, sport, dst, dport, seq, flags & 0x3F, tcp[(offset_byte >> 4) * 4 :])


# -- reassembly ----------------------------------------------------------------------------------


@dataclass
class _Direction:
    base: int | None = None  # sequence number of the stream's first byte
    delivered: int = 0  # stream bytes handed on so far
    pending: dict[int, bytes] = field(default_factory=dict)  # offset -> bytes, waiting for a gap to fill
    fin_at: int | None = None
    ended: bool = False


@dataclass
class _TcpConnection:
    builder: ConnectionBuilder
    directions: dict[str, _Direction]
    done: bool = False


class Reassembler:
    """Feeds TCP segments in capture order; builds one transcript connection per TCP connection."""

    def __init__(self, app_port: int) -> None:
        self.app_port = app_port
        self.connections: list[_TcpConnection] = []
        # Segments per TCP port (both ends), to say which ports there are when none is the app's.
        self.ports_seen: dict[int, int] = {}
        self._open: dict[tuple[str, int, str, int], _TcpConnection] = {}
        self._origin: int | None = None

    def _time(self, time_ns: int) -> int:
        if self._origin is None:
            self._origin = time_ns
        return max(0, (time_ns - self._origin) // 1000)

    def feed(self, segment: Segment) -> None:
        """One TCP segment into its connection: SYN, FIN and RST tracked, the payload placed by sequence number."""
        for port in (segment.sport, segment.dport):
            self.ports_seen[port] = self.ports_seen.get(port, 0) + 1
        if segment.dport == self.app_port:
            key, direction = (segment.src, segment.sport, segment.dst, segment.dport), WS_TO_APP
        elif segment.sport == self.app_port:
            key, direction = (segment.dst, segment.dport, segment.src, segment.sport), APP_TO_WS
        else:
            return
        now = self._time(segment.time_ns)
        conn = self._open.get(key)
        starts = bool(segment.flags & TCP_SYN) and not segment.flags & TCP_ACK
        if conn is not None and starts and (conn.directions[WS_TO_APP].delivered or conn.directions[WS_TO_APP].ended):
            # The same addresses and ports again: a new connection (a retransmitted SYN is not).
            self._close(conn, now)
            conn = None
        if conn is None:
            if not starts and not segment.payload:
                return  # pure ACKs, FINs or RSTs of a connection that is over or was never seen
            conn = _TcpConnection(ConnectionBuilder(len(self.connections) + 1, f"{key[0]}:{key[1]}", f"{key[2]}:{key[3]}"),
                                  {WS_TO_APP: _Direction(), APP_TO_WS: _Direction()})
            conn.builder.opened(now)
            self.connections.append(conn)
            self._open[key] = conn
        if conn.done:
            return
        state = conn.directions[direction]
        if segment.flags & TCP_SYN:
            state.base = (segment.seq + 1) & 0xFFFFFFFF
            return
        if state.base is None:
            state.base = segment.seq  # the capture began mid-connection
        offset = (segment.seq - state.base) & 0xFFFFFFFF
        if offset > 0x7FFFFFFF:
            # Before the stream's start: a retransmission of bytes older than anything kept.
            skip = 0x100000000 - offset
            offset, payload = 0, segment.payload[skip:]
        else:
            payload = segment.payload
        if payload:
            self._accept(conn, state, direction, offset, payload, now)
        if segment.flags & TCP_FIN:
            state.fin_at = offset + len(payload)
            self._deliver(conn, state, direction, now)
        if segment.flags & TCP_RST:
            self._flush_gaps(conn, state, direction, now)
            conn.builder.end(direction, "RST", now)
            self._close(conn, now)
            self._open.pop(key, None)
            return
        if all(d.ended for d in conn.directions.values()):
            self._close(conn, now)
            self._open.pop(key, None)

    def _accept(self, conn: _TcpConnection, state: _Direction, direction: str, offset: int, payload: bytes,
                now: int) -> None:
        end = offset + len(payload)
        if end <= state.delivered:
            return  # a retransmission of bytes already handed on
        if offset < state.delivered:
            payload, offset = payload[state.delivered - offset :], state.delivered
        if offset not in state.pending or len(state.pending[offset]) < len(payload):
            state.pending[offset] = payload
        self._deliver(conn, state, direction, now)

    def _deliver(self, conn: _TcpConnection, state: _Direction, direction: str, now: int) -> None:
        while True:
            ready = [o for o in state.pending if o <= state.delivered]
            if not ready:
                break
            offset = min(ready)
            payload = state.pending.pop(offset)
            fresh = payload[state.delivered - offset :]
            if fresh:
                conn.builder.data(direction, fresh, now)
                state.delivered += len(fresh)
        if state.fin_at is not None and state.delivered >= state.fin_at and not state.ended:
            state.ended = True
            conn.builder.end(direction, "FIN", now)

    def _flush_gaps(self, conn: _TcpConnection, state: _Direction, direction: str, now: int) -> None:
        """Hand on what waits behind a gap that will never fill, noting the gap."""
        while state.pending:
            offset = min(state.pending)
            if offset > state.delivered:
                conn.builder.note(f"{direction}: {offset - state.delivered} bytes missing from the capture at "
                                  f"stream offset {state.delivered}", now)
                state.delivered = offset
            self._deliver(conn, state, direction, now)

    def _close(self, conn: _TcpConnection, now: int) -> None:
        if conn.done:
            return
        for direction, state in conn.directions.items():
            self._flush_gaps(conn, state, direction, now)
        if not all(d.ended for d in conn.directions.values()) and not any(
                isinstance(i, CloseItem) and i.how == "RST" for i in conn.builder.connection.items):
            conn.builder.note("capture ended with the connection open", now)
        conn.done = True
        conn.builder.finish(now)

    def finish(self) -> None:
        end = max((i.time_us or 0 for c in self.connections for i in c.builder.connection.items), default=0)
        for conn in self.connections:
            self._close(conn, end)


def import_pcap(path: str | Path, app_port: int) -> Transcript:
    """A transcript of every TCP connection to or from app_port in the capture file.

    NoTrafficError when there is none (naming the ports there are); a file cut short is imported up
    to its last whole packet, with a `truncated:` header line saying where it ends.
    """
    capture = CaptureFile(path)
    reassembler = Reassembler(app_port)
    for packet in capture.packets():
        segment = parse_segment(packet)
        if segment is not None:
            reassembler.feed(segment)
    reassembler.finish()
    if not reassembler.connections:
        busiest = sorted(reassembler.ports_seen, key=lambda port: -reassembler.ports_seen[port])[:8]
        ports = f"TCP ports in it: {', '.join(map(str, sorted(busiest)))}" if busiest else "no TCP traffic in it"
        cut = f"; the file is cut short at byte offset {capture.truncated_at}" if capture.truncated_at is not None else ""
        raise NoTrafficError(f"no TCP connection to or from port {app_port} in {capture.packets_read} "
                             f"packet(s) ({ports}){cut}")
    meta = [("source", f"pcap {Path(path).name}"), ("config", f"application port {app_port}"),
            ("tool", "fcgispec pcap import")]
    if capture.truncated_at is not None:
        meta.append(("truncated", truncation_text(capture)))
    return Transcript(meta, [c.builder.connection for c in reassembler.connections])


def truncation_text(capture: CaptureFile) -> str:
    """What the header says of a capture file cut short."""
    return (f"the capture file ends inside a packet at byte offset {capture.truncated_at}: "
            f"its {capture.packets_read} whole packet(s) before it were imported")


# -- writing synthetic captures (tests, bug reports without a real capture) ----------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(text: str | None, default: tuple[str, int]) -> tuple[bytes, int]:
    host, port = default
    if text and ":" in text and not text.startswith("["):
        host, _, port_text = text.rpartition(":")
        port = int(port_text) if port_text.isdigit() else port
    try:
        return bytes(int(part) for part in host.split(".")), port
    except ValueError:
        return bytes([127, 0, 0, 1]), port


def _frame(src: tuple[bytes, int], dst: tuple[bytes, int], seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    pseudo = src[0] + dst[0] + struct.pack(">BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack(">H", _checksum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src[0], dst[0])
    ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + tcp + payload  # Ethernet, zero MACs as on Linux loopback


def transcript_to_frames(transcript: Transcript, *, reorder: bool = False, retransmit: bool = False,
                         app_port: int = 9000) -> list[tuple[int, bytes]]:
    """(time in µs, Ethernet frame) for every connection: handshake, one segment per write piece, FIN/RST.

    reorder swaps each pair of consecutive data segments of a direction; retransmit sends
    every data segment twice: both must import to the same transcript.
    """
    frames: list[tuple[int, bytes]] = []
    for index, connection in enumerate(transcript.connections):
        ws = _address(connection.ws_address, ("127.0.0.1", 40000 + index))
        app = _address(connection.app_address, ("127.0.0.1", app_port))
        ends = {WS_TO_APP: (ws, app), APP_TO_WS: (app, ws)}
        seq = {WS_TO_APP: 1000 + index * 7919, APP_TO_WS: 5000 + index * 104729}
        streams = {d: connection.stream(d) for d in ends}
        sent = {WS_TO_APP: 0, APP_TO_WS: 0}
        has_writes = {d: any(isinstance(i, WriteItem) and i.direction == d for i in connection.items) for d in ends}
        start = next((i.time_us or 0 for i in connection.items), 0)
        frames.append((start, _frame(ws, app, seq[WS_TO_APP] - 1, 0, TCP_SYN, b"")))
        frames.append((start, _frame(app, ws, seq[APP_TO_WS] - 1, seq[WS_TO_APP], TCP_SYN | TCP_ACK, b"")))
        held: dict[str, tuple[int, bytes] | None] = {WS_TO_APP: None, APP_TO_WS: None}

        def emit(direction: str, size: int, at: int) -> None:
            # An IPv4 packet holds at most 64 KiB: a larger piece (one recv by the proxy) takes several segments.
            while size > MAX_SEGMENT:
                emit_one(direction, MAX_SEGMENT, at)
                size -= MAX_SEGMENT
            emit_one(direction, size, at)

        def emit_one(direction: str, size: int, at: int) -> None:
            src, dst = ends[direction]
            other = APP_TO_WS if direction == WS_TO_APP else WS_TO_APP
            payload = streams[direction][sent[direction] : sent[direction] + size]
            frame = _frame(src, dst, seq[direction] + sent[direction], seq[other] + sent[other], TCP_ACK | 0x08, payload)
            sent[direction] += size
            if reorder:
                if held[direction] is None:
                    held[direction] = (at, frame)
                    return
                frames.append((at, frame))
                frames.append(held[direction])  # type: ignore[arg-type]
                held[direction] = None
            else:
                frames.append((at, frame))
            if retransmit:
                frames.append((at, frame))

        def release(direction: str) -> None:
            if held[direction] is not None:
                frames.append(held[direction])  # type: ignore[arg-type]
                held[direction] = None

        for item in connection.items:
            at = item.time_us or start
            if isinstance(item, WriteItem):
                emit(item.direction, item.size, at)
            elif isinstance(item, (RecordItem, RawItem)) and not has_writes[item.direction]:
                size = len(item.record.encode()) if isinstance(item, RecordItem) else len(item.data)
                emit(item.direction, size, at)
            elif isinstance(item, CloseItem):
                release(item.direction)
                src, dst = ends[item.direction]
                other = APP_TO_WS if item.direction == WS_TO_APP else WS_TO_APP
                flags = TCP_FIN | TCP_ACK if item.how == "FIN" else TCP_RST
                frames.append((at, _frame(src, dst, seq[item.direction] + sent[item.direction],
                                          seq[other] + sent[other], flags, b"")))
        for direction in ends:
            release(direction)
    frames.sort(key=lambda pair: pair[0])
    return frames


def write_pcap(path: str | Path, frames: list[tuple[int, bytes]], *, pcapng: bool = False) -> None:
    """Write Ethernet frames as classic pcap (µs) or pcapng (one interface, default µs resolution)."""
    with open(path, "wb") as out:
        if not pcapng:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINK_ETHERNET))
            for at, frame in frames:
                out.write(struct.pack("<IIII", at // 1_000_000, at % 1_000_000, len(frame), len(frame)) + frame)
            return
        shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        out.write(struct.pack("<II", PCAPNG_SHB, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body)))
        idb_body = struct.pack("<HHI", LINK_ETHERNET, 0, 262144)
        out.write(struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body)))
        for at, frame in frames:
            padded = frame + b"\0" * (-len(frame) % 4)
            body = struct.pack("<IIIII", 0, at >> 32, at & 0xFFFFFFFF, len(frame), len(frame)) + padded
            out.write(struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
