"""The wire protocol on bytes alone (docs/protocol.md): worked examples, COBS, CRC, the
streaming decoder, request/reply codecs."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host import protocol as p

# -- worked examples (the literal bytes of docs/protocol.md) -----------------------------------

EXAMPLES = [
    # INFO, seq 1, offset 0 (the doc's worked example, checked by hand there)
    (lambda: p.info_request(1, 0), "04 01 01 01 02 02 01 01 03 66 44 00"),
    # WRITE two 3-byte beats (01 02 03, ff 00 05) to buffer 0 from beat 0, seq 2
    (lambda: p.write_request(2, 0, 0, bytes([1, 2, 3, 0xFF, 0, 5])),
     "04 01 02 02 02 0b 01 01 01 01 01 05 01 02 03 ff 04 05 1b 78 00"),
    (lambda: p.ack_frame(p.Op.WRITE, 2), "04 01 82 02 01 01 03 c0 8b 00"),
    # READ two beats of buffer 2 from beat 0, seq 3
    (lambda: p.read_request(3, 2, 0, 2), "04 01 03 03 02 07 02 02 01 01 01 02 02 03 a7 20 00"),
    # RUN unit 0 (a 2x2 mac_array), mode 0, M=K=N=2, 2 beats on a, b and c, seq 4
    (lambda: p.run_request(4, 0, 0, (2, 2, 2), (2, 2, 2)),
     "04 01 04 04 02 1a 01 01 02 02 01 01 02 02 01 01 02 02 01 01 02 02 01 01 02 02 01 01 "
     "02 02 01 01 03 a1 16 00"),
    (lambda: p.ack_frame(p.Op.RUN, 4, p.run_reply(14, (2,))),
     "04 01 84 04 02 08 02 0e 01 01 02 02 01 01 03 56 e0 00"),
    # NAK OUT_OF_RANGE to a READ, seq 5
    (lambda: p.nak_frame(p.Op.READ, 5, p.NakCode.OUT_OF_RANGE),
     "04 01 7f 05 02 02 05 03 04 c3 db 00"),
    (lambda: p.status_request(6), "04 01 05 06 01 01 03 4f 7e 00"),
]


@pytest.mark.parametrize("build,wire", EXAMPLES)
def test_worked_examples(build, wire):
    frame = build()
    assert frame.hex(" ") == wire
    # ... and they decode back to themselves
    (pkt,) = p.FrameDecoder().feed(frame)
    assert p.encode_frame(pkt.op, pkt.seq, pkt.payload) == frame


def _crc_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_check_value_and_definition():
    assert p.crc16(b"123456789") == 0x29B1
    for n in (0, 1, 7, 100):
        data = os.urandom(n)
        assert p.crc16(data) == _crc_bitwise(data)
    assert p.crc16(bytes.fromhex("010101000200 0000".replace(" ", ""))) == 0x6644


def test_cobs_known_vectors():
    # Wikipedia's COBS examples (the standard encoding the doc names)
    vectors = [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ]
    for raw, enc in vectors:
        assert p.cobs_encode(raw) == enc
        assert p.cobs_decode(enc) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_cobs_round_trip(data):
    enc = p.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(enc) == data


@settings(max_examples=200, deadline=None)
@given(op=st.integers(0, 255), seq=st.integers(0, 0xFFFF), payload=st.binary(max_size=1024))
def test_frame_round_trip(op, seq, payload):
    frame = p.encode_frame(op, seq, payload)
    assert frame[-1] == 0 and 0 not in frame[:-1]
    assert len(frame) <= p.COBS_MAX + 1
    (pkt,) = p.FrameDecoder().feed(frame)
    assert (pkt.op, pkt.seq, pkt.payload, pkt.ver) == (op, seq, payload, 1)


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), max_size=8), cuts=st.lists(st.integers(0, 4000)))
def test_decoder_any_split(payloads, cuts):
    stream = b"".join(p.encode_frame(p.Op.WRITE, i, pl) for i, pl in enumerate(payloads))
    dec = p.FrameDecoder()
    got = []
    prev = 0
    for c in sorted(set(min(c, len(stream)) for c in cuts)) + [len(stream)]:
        got += dec.feed(stream[prev:c])
        prev = c
    assert [g.payload for g in got] == payloads
    assert dec.bad_frames == dec.crc_errors == 0


def test_decoder_resynchronises_and_counts():
    good = p.info_request(7, 0)
    dec = p.FrameDecoder()
    flipped = bytearray(good)
    flipped[3] ^= 0x10
    pkts = dec.feed(b"\x00\x00" + b"\x55\x66" + b"\x00" + bytes(flipped) + good)
    assert [x.seq for x in pkts] == [7]
    assert dec.bad_frames + dec.crc_errors == 2


def test_decoder_bounded_on_endless_garbage():
    dec = p.FrameDecoder()
    for _ in range(50):
        assert dec.feed(b"\x01" * 1000) == []
        assert dec.pending <= p.COBS_MAX
    assert dec.overflows == 1
    # the next 0x00 ends the junk; a good frame after it is decoded
    assert [x.seq for x in dec.feed(b"\x00" + p.status_request(9))] == [9]


def test_decoder_oversized_frame_is_bad_not_allocated():
    big = p.encode_frame(p.Op.WRITE, 1, bytes(1025))  # one byte over max_payload
    dec = p.FrameDecoder()
    assert dec.feed(big) == []
    assert dec.bad_frames == 1
    assert p.FrameDecoder(max_payload=1025).feed(big)[0].payload == bytes(1025)


@pytest.mark.parametrize("frame,kind", [
    (b"\x05\x01\x02", "cobs"),                  # block runs past the end
    (p.cobs_encode(b"\x01\x02\x03"), "length"),  # shorter than header + CRC
    (p.cobs_encode(p.encode_packet(1, 1, b"ab") + b"\x00"), "length"),  # one byte too many
])
def test_decode_packet_errors(frame, kind):
    with pytest.raises(p.FrameError) as err:
        p.decode_packet(frame)
    assert err.value.kind == kind


def test_bad_crc_and_length_field():
    raw = bytearray(p.encode_packet(p.Op.READ, 3, b"\x00" * 7))
    raw[-1] ^= 1
    with pytest.raises(p.FrameError) as err:
        p.decode_packet(p.cobs_encode(bytes(raw)))
    assert err.value.kind == "crc"
    raw = bytearray(p.encode_packet(p.Op.READ, 3, b"\x00" * 7))
    raw[4] = 200  # len says 200
    with pytest.raises(p.FrameError) as err:
        p.decode_packet(p.cobs_encode(bytes(raw)))
    assert err.value.kind == "length"


def test_reply_matching():
    ack = p.Packet(op=p.Op.READ | p.ACK_BIT, seq=3, payload=b"\x01\x02")
    assert p.reply_payload(ack, p.Op.READ, 3) == b"\x01\x02"
    for other in (p.Packet(op=ack.op, seq=4, payload=b""),
                  p.Packet(op=p.Op.WRITE | p.ACK_BIT, seq=3),
                  p.Packet(op=ack.op, seq=3, ver=2),
                  p.Packet(op=p.NAK_OP, seq=3, payload=b"\x02\x04"),   # NAK for another op
                  p.Packet(op=p.NAK_OP, seq=3, payload=b"\x03")):      # malformed NAK
        with pytest.raises(p.ReplyMismatch):
            p.reply_payload(other, p.Op.READ, 3)
    with pytest.raises(p.NakError) as err:
        p.reply_payload(p.Packet(op=p.NAK_OP, seq=3, payload=b"\x03\x04"), p.Op.READ, 3)
    assert err.value.code == p.NakCode.OUT_OF_RANGE
    assert "READ" in str(err.value) and "OUT_OF_RANGE" in str(err.value)


def test_reply_parsers_check_lengths():
    assert p.parse_run_reply(p.run_reply(99, (4, 5)), 2) == (99, (4, 5))
    with pytest.raises(p.ReplyMismatch):
        p.parse_run_reply(p.run_reply(99, (4,)), 2)
    st_ = p.Status(0, 1, 2, 3, 4, 5)
    assert p.parse_status_reply(p.status_reply(st_)) == st_
    with pytest.raises(p.ReplyMismatch):
        p.parse_status_reply(b"\x00" * 12)
    assert p.parse_read_reply(b"abcdef", 2, 3) == b"abcdef"
    with pytest.raises(p.ReplyMismatch):
        p.parse_read_reply(b"abcde", 2, 3)
    assert p.parse_info_reply(p.info_reply(5, b"hello"), 0) == (5, b"hello")
    assert p.parse_info_reply(p.info_reply(5, b"lo"), 3) == (5, b"lo")
    assert p.parse_info_reply(p.info_reply(5, b"hel"), 0) == (5, b"hel")   # a shorter piece
    assert p.parse_info_reply(p.info_reply(5, b""), 5) == (5, b"")
    for bad in (b"\x05", p.info_reply(5, b""), p.info_reply(5, b"hello!")):
        with pytest.raises(p.ReplyMismatch):
            p.parse_info_reply(bad, 0)


def test_request_parsers():
    assert p.parse_info_request(b"\x10\x00") == 16
    assert p.parse_write_request(b"\x01\x02\x00\x00\x00ab") == (1, 2, b"ab")
    assert p.parse_read_request(b"\x01\x02\x00\x00\x00\x03\x00") == (1, 2, 3)
    req = p.parse_run_request(p.decode_packet(p.run_request(1, 2, 3, (4, 5, 6), (7, 8))[:-1])
                              .payload, streams=2)
    assert req == p.RunRequest(2, 3, (4, 5, 6), (7, 8))
    for op, fn, payload in ((p.Op.INFO, p.parse_info_request, b"\x00"),
                            (p.Op.WRITE, p.parse_write_request, b"\x00" * 4),
                            (p.Op.READ, p.parse_read_request, b"\x00" * 8),
                            (p.Op.RUN, p.parse_run_request, b"\x00" * 15)):
        with pytest.raises(p.NakError) as err:
            fn(payload)
        assert (err.value.op, err.value.code) == (op, p.NakCode.BAD_LENGTH)
    with pytest.raises(p.NakError):
        p.parse_run_request(b"\x00" * 18, streams=2)
    with pytest.raises(p.NakError):
        p.parse_empty_request(p.Op.STATUS, b"\x00")


def test_cobs_max_formula():
    assert p.COBS_MAX == 1032 + 5 + 1
    assert len(p.encode_frame(1, 1, b"\x01" * 1024)) - 1 <= p.COBS_MAX


def test_the_default_baud_is_the_designs_default_link_rate():
    from generators.config import LinkConfig
    from host.transport import DEFAULT_BAUD

    assert DEFAULT_BAUD == LinkConfig().uart
