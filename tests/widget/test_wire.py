"""The one serializer: dtype policy, {dtype, shape, buffer} round trips, chunked replies, and the
selection trait through get_state()/set_state() and a real JS-shaped comm message."""

from __future__ import annotations

import numpy as np
import pytest

from patternviz_widget.errors import InputError
from patternviz_widget.widget import rpc as _rpc
from patternviz_widget.widget import wire as _wire


@pytest.mark.parametrize(
    ("dtype", "sent"),
    [
        ("float64", "float32"),
        ("float16", "float32"),
        ("float32", "float32"),
        ("int64", "int32"),
        ("uint64", "uint32"),
        ("int32", "int32"),
        ("uint32", "uint32"),
        ("int16", "int16"),
        ("uint16", "uint16"),
        ("int8", "int8"),
        ("uint8", "uint8"),
        ("bool", "uint8"),
    ],
)
def test_dtype_policy_round_trip(dtype, sent):
    rng = np.random.default_rng(0)
    a = (np.abs(rng.normal(size=(7, 3))) * 50).astype(dtype)
    payload = _wire.encode(a, "xyz")
    assert payload["dtype"] == sent
    assert payload["shape"] == [7, 3]
    assert len(payload["buffer"]) == a.size * np.dtype(sent).itemsize
    back = _wire.decode(payload, "xyz")
    assert back.dtype == np.dtype(sent) and back.shape == (7, 3)
    np.testing.assert_array_equal(back, a.astype(sent))


def test_non_contiguous_input_is_sent_contiguous():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    assert not a.flags.c_contiguous
    back = _wire.decode(_wire.encode(a))
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("dtype", ["complex64", "object", "datetime64[s]", "U3"])
def test_unsupported_dtype_names_trait_and_dtype(dtype):
    a = np.zeros(3, dtype=dtype)
    with pytest.raises(InputError) as err:
        _wire.encode(a, "discrimination")
    msg = str(err.value)
    assert "'discrimination'" in msg and np.dtype(dtype).name in msg and ".astype" in msg


def test_int64_out_of_int32_range_is_an_error_not_a_wrap():
    with pytest.raises(InputError, match=r"outside int32"):
        _wire.encode(np.array([0, 2**40], dtype=np.int64), "ids")


def test_decode_rejects_a_buffer_of_the_wrong_size():
    with pytest.raises(InputError, match="do not hold"):
        _wire.decode({"dtype": "float32", "shape": [2, 3], "buffer": b"\0" * 20}, "xyz")


def test_index_buffers_are_sorted_unique_uint32():
    raw = _wire.encode_indices([5, 1, 5, 3])
    assert np.frombuffer(raw, "<u4").tolist() == [1, 3, 5]
    assert _wire.decode_indices(memoryview(raw)).tolist() == [1, 3, 5]
    with pytest.raises(InputError):
        _wire.encode_indices([-1])
    with pytest.raises(InputError):
        _wire.encode_indices([1.5])
    with pytest.raises(InputError, match="multiple of 4"):
        _wire.decode_indices(b"\0\0\0")


def test_chunked_reply_reassembles_and_respects_the_size_limit():
    rng = np.random.default_rng(1)
    arrays = {
        "xyz": rng.normal(size=(50_000, 3)).astype(np.float32),
        "glyph": rng.integers(0, 3, 50_000).astype(np.uint8),
    }
    limit = 100_000
    msgs = _rpc.build_replies("r1", {"n": 50_000}, arrays, max_bytes=limit)
    assert len(msgs) > 1
    assert all(sum(len(b) for b in bufs) <= limit for _, bufs in msgs)
    assert msgs[0][0]["meta"] == {"n": 50_000} and "meta" not in msgs[1][0]
    specs = msgs[0][0]["arrays"]
    whole = {name: bytearray(s["nbytes"]) for name, s in specs.items()}
    for content, bufs in msgs:
        assert content["parts"] == len(msgs) and content["id"] == "r1"
        for chunk, buf in zip(content["chunks"], bufs, strict=True):
            whole[chunk["name"]][chunk["offset"] : chunk["offset"] + len(buf)] = buf
    xyz = np.frombuffer(bytes(whole["xyz"]), specs["xyz"]["dtype"]).reshape(specs["xyz"]["shape"])
    np.testing.assert_array_equal(xyz, arrays["xyz"])
    glyph = np.frombuffer(bytes(whole["glyph"]), np.uint8)
    np.testing.assert_array_equal(glyph, arrays["glyph"])


def test_small_reply_is_one_message():
    msgs = _rpc.build_replies("r2", {}, {"a": np.arange(10, dtype=np.float64)})
    assert len(msgs) == 1
    content, bufs = msgs[0]
    assert content["arrays"]["a"]["dtype"] == "float32"
    np.testing.assert_array_equal(np.frombuffer(bufs[0], np.float32), np.arange(10))
