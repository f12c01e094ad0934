#!/usr/bin/env python3
"""Submit one tensor to inferq over MessagePack and print the result as one JSON line.

    python3 examples/python/client.py [--url http://127.0.0.1:8080] [--model noop]

Needs only msgpack, numpy and the standard library. It asks GET /v1/models/<model> for the
model's first input (name, dtype, shape; -1 axes become --batch on axis 0 and 2 elsewhere),
POSTs a tensor of that shape as application/msgpack with `Prefer: wait=10`, and when the answer
is 202 long-polls GET /v1/requests/<id>?wait=5 until the request is terminal. Every output is
decoded with numpy.frombuffer(data, dtype).reshape(shape) and summarised as
{"dtype", "shape", "sum"}. For the `noop` model it also checks that the output equals the input
exactly. Exits non-zero on any failure, including a request that did not succeed.
"""

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import msgpack
import numpy as np

TERMINAL_STATUSES = {"succeeded", "failed", "cancelled", "expired"}

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

MSGPACK = "application/msgpack"


class ClientError(Exception):
    pass


def http(method, url, body=None, headers=None, timeout=30.0):
    """Returns (status, content type, body bytes); raises ClientError on HTTP errors and network failures."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            problem = json.loads(text)
            text = f"{problem.get('title', '')}: {problem.get('detail', '')}"
        except ValueError:
            pass
        raise ClientError(f"{method} {url} answered {error.code}: {text}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ClientError(f"{method} {url} failed: {getattr(error, 'reason', error)}") from None


def decode_body(content_type, raw):
    media_type = content_type.split(";")[0].strip().lower()
    if media_type in (MSGPACK, "application/x-msgpack", "application/vnd.msgpack"):
        return msgpack.unpackb(raw, raw=False)
    if media_type == "application/json" or media_type.endswith("+json"):
        return json.loads(raw)
    raise ClientError(f"unexpected response content type {content_type!r}")


def find_inputs(info):
    """The model's input specs from GET /v1/models/<model>, wherever this server version puts them."""
    candidates = [info, info.get("signature")]
    versions = info.get("versions")
    if isinstance(versions, list):
        candidates += [v for v in reversed(versions) if isinstance(v, dict)]
        candidates += [v.get("signature") for v in reversed(versions) if isinstance(v, dict)]
    for candidate in candidates:
        if isinstance(candidate, dict) and isinstance(candidate.get("inputs"), list) and candidate["inputs"]:
            return candidate["inputs"]
    raise ClientError("GET /v1/models/<model> did not list the model's inputs")


def concrete_shape(shape, batch):
    return [(batch if axis == 0 else 2) if dim < 0 else dim for axis, dim in enumerate(shape)]


def make_input(spec, batch):
    dtype = spec.get("dtype", "float32")
    if dtype not in NUMPY_DTYPES:
        raise ClientError(f"input {spec.get('name')!r} is {dtype}; this example only sends numeric tensors")
    shape = concrete_shape(spec["shape"], batch)
    count = math.prod(shape)
    # Deterministic values that float16..float64 all hold exactly, so an identity model returns them unchanged.
    values = (np.arange(count) % 251) / 256.0
    if dtype == "bool":
        values = np.arange(count) % 2
    elif not dtype.startswith("float"):
        values = np.arange(count) % 100
    return np.asarray(values).astype(NUMPY_DTYPES[dtype]).reshape(shape), dtype


def to_wire(array, dtype):
    return {"dtype": dtype, "shape": list(array.shape), "data": array.astype(NUMPY_DTYPES[dtype]).tobytes()}


def from_wire(tensor):
    """A received tensor as a numpy array: MessagePack bin through numpy.frombuffer, JSON lists as a fallback."""
    dtype, shape, data = tensor["dtype"], tensor["shape"], tensor["data"]
    if dtype == "string":
        return np.array(data, dtype=object).reshape(shape)
    if isinstance(data, bytes):
        return np.frombuffer(data, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    if isinstance(data, list):
        if dtype in ("int64", "uint64"):
            data = [int(x) for x in data]
        elif dtype.startswith("float"):
            data = [float(x) for x in data]  # float() reads "NaN", "Infinity", "-Infinity"
        return np.array(data, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    raise ClientError(f"cannot decode tensor data of type {type(data).__name__}")


def summarise(array, dtype):
    if dtype == "string":
        return {"dtype": dtype, "shape": list(array.shape), "sum": None}
    total = float(np.sum(array, dtype=np.float64))
    return {"dtype": dtype, "shape": list(array.shape), "sum": total if math.isfinite(total) else str(total)}


def run(args):
    base = args.url.rstrip("/")
    model = urllib.parse.quote(args.model, safe="")
    auth = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    _, content_type, raw = http("GET", f"{base}/v1/models/{model}", headers={"Accept": "application/json", **auth})
    spec = find_inputs(decode_body(content_type, raw))[0]
    batch = args.batch if args.batch is not None else (2 if args.model == "noop" else 1)
    array, dtype = make_input(spec, batch)
    name = spec["name"]

    body = msgpack.packb({"inputs": {name: to_wire(array, dtype)}}, use_bin_type=True)
    headers = {"Content-Type": MSGPACK, "Accept": MSGPACK, "Prefer": "wait=10", **auth}
    status, content_type, raw = http("POST", f"{base}/v1/models/{model}/infer", body, headers, timeout=40)
    record = decode_body(content_type, raw)
    if status not in (200, 202):
        raise ClientError(f"POST answered {status}")

    deadline = time.monotonic() + args.timeout
    while record.get("status") not in TERMINAL_STATUSES:
        if time.monotonic() > deadline:
            raise ClientError(f"request {record.get('id')} still {record.get('status')} after {args.timeout} s")
        request_id = urllib.parse.quote(str(record["id"]), safe="")
        _, content_type, raw = http(
            "GET", f"{base}/v1/requests/{request_id}?wait=5", headers={"Accept": MSGPACK, **auth}, timeout=35
        )
        record = decode_body(content_type, raw)

    outputs = {out_name: from_wire(tensor) for out_name, tensor in (record.get("outputs") or {}).items()}
    line = {
        "id": record.get("id"),
        "status": record.get("status"),
        "outputs": {n: summarise(a, record["outputs"][n]["dtype"]) for n, a in outputs.items()},
    }
    if record.get("error"):
        line["error"] = record["error"]
    print(json.dumps(line))

    if record.get("status") != "succeeded":
        raise ClientError(f"request ended {record.get('status')}: {record.get('error')}")
    if args.model == "noop":
        echoed = outputs.get("y")
        if echoed is None and len(outputs) == 1:
            echoed = next(iter(outputs.values()))
        if echoed is None:
            raise ClientError(f"noop returned no 'y' output (got {sorted(outputs)})")
        if echoed.dtype != array.dtype or echoed.shape != array.shape or not np.array_equal(echoed, array):
            raise ClientError("noop output differs from its input")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="inferq API base URL")
    parser.add_argument("--model", default="noop", help="model name")
    parser.add_argument("--batch", type=int, help="size of a dynamic first axis (default: 2 for noop, else 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a terminal state")
    parser.add_argument(
        "--api-key", default=os.environ.get("INFERQ_API_KEY"), help="bearer key when API_KEYS is set (env INFERQ_API_KEY)"
    )
    args = parser.parse_args()
    try:
        run(args)
    except ClientError as error:
        print(f"client.py: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # anything unexpected is a failure too, with its type for the bug report
        print(f"client.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
