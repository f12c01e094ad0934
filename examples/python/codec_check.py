#!/usr/bin/env python3
"""Check inferq's MessagePack tensor encoding with nothing but msgpack and numpy.

    codec_check.py FILE           decode the MessagePack value in FILE and print it as one JSON
                                  line, every tensor {dtype, shape, data: bin} turned into
                                  {dtype, shape, data: [elements]}
    codec_check.py --write FILE   write a sample infer request (one tensor of most dtypes) to FILE

Printed elements follow inferq's JSON conventions, so they compare exactly with what the
TypeScript side expects: int64/uint64 as decimal strings, non-finite floats as "NaN",
"Infinity", "-Infinity", float16 widened to numbers, bool as true/false.

Exits non-zero when the bytes are not standard MessagePack (an extension type, or tensor data
that is not `bin`): that is what packages/protocol/src/python-interop.test.ts relies on.
"""

import json
import math
import sys

import msgpack
import numpy as np

# Element layout on the wire: little-endian, densely packed, bool one byte each.
NUMPY_DTYPES = {
    "float32": "<f4",
    "float64": "<f8",
    "float16": "<f2",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
}


def refuse_extensions(code, data):
    raise ValueError(f"MessagePack extension type {code} found: inferq must write standard MessagePack only")


def is_tensor(value):
    return isinstance(value, dict) and set(value) == {"dtype", "shape", "data"}


def element_to_json(dtype, value):
    if dtype in ("int64", "uint64"):
        return str(int(value))
    if dtype == "bool":
        return bool(value)
    if dtype.startswith("float"):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    return int(value)


def tensor_to_json(tensor):
    dtype, shape, data = tensor["dtype"], tensor["shape"], tensor["data"]
    if dtype == "string":
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise ValueError("string tensor data must be an array of str")
        return {"dtype": dtype, "shape": shape, "data": data}
    if not isinstance(data, bytes):
        raise ValueError(f"{dtype} tensor data must be MessagePack bin, got {type(data).__name__}")
    array = np.frombuffer(data, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    return {"dtype": dtype, "shape": list(array.shape), "data": [element_to_json(dtype, x) for x in array.reshape(-1)]}


def to_json(value):
    if is_tensor(value):
        return tensor_to_json(value)
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        raise ValueError("unexpected bin outside a tensor")
    return value


def wire_tensor(array, dtype):
    return {"dtype": dtype, "shape": list(array.shape), "data": array.astype(NUMPY_DTYPES[dtype]).tobytes()}


def sample_request():
    return {
        "inputs": {
            "f32": wire_tensor(np.array([[1.5, -2.0], [math.nan, math.inf]]), "float32"),
            "f64": wire_tensor(np.array([0.1, -1e300, -math.inf]), "float64"),
            "f16": wire_tensor(np.array([0.5, -1.0, 65504.0]), "float16"),
            "i8": wire_tensor(np.array([-128, 127]), "int8"),
            "i32": wire_tensor(np.array([-(2**31), 2**31 - 1]), "int32"),
            "i64": wire_tensor(np.array([-(2**63), 2**63 - 1, 2**53 + 1], dtype=np.int64), "int64"),
            "u16": wire_tensor(np.array([0, 65535]), "uint16"),
            "u64": wire_tensor(np.array([2**64 - 1], dtype=np.uint64), "uint64"),
            "flag": wire_tensor(np.array([True, False, True]), "bool"),
            "text": {"dtype": "string", "shape": [2], "data": ["héllo", ""]},
            "empty": wire_tensor(np.zeros((0, 2)), "float32"),
            "scalar": wire_tensor(np.array(3.25), "float64"),
        },
        "outputs": ["y"],
        "priority": 2,
        "timeoutMs": 5000,
        "metadata": {"origin": "python", "attempt": 1},
    }


def main(argv):
    if len(argv) == 3 and argv[1] == "--write":
        with open(argv[2], "wb") as file:
            file.write(msgpack.packb(sample_request(), use_bin_type=True))
        return 0
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as file:
        raw = file.read()
    value = msgpack.unpackb(raw, raw=False, ext_hook=refuse_extensions, strict_map_key=True)
    print(json.dumps(to_json(value), ensure_ascii=False, allow_nan=False))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as error:  # one line on stderr, non-zero exit: the test shows it
        print(f"codec_check: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
