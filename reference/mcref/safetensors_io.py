"""Reads and writes the safetensors format (8-byte little-endian header size,
JSON header, raw little-endian tensor bytes), with no dependency beyond torch.
F32, BF16, F16 (and I32/I64) both ways; `save_streaming` writes a file tensor
by tensor (chunk by chunk), so a large checkpoint never sits in memory."""
import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
           torch.int32: "I32", torch.int64: "I64"}
_BY_NAME = {v: k for k, v in _DTYPES.items()}
_ELEMENT_SIZE = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2, torch.int32: 4,
                 torch.int64: 8}


def save(tensors, path, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def save_streaming(path, entries, metadata=None):
    """entries: [(name, dtype, shape, chunks)], chunks() yielding tensors of
    that dtype whose elements, in order, are the tensor's (row-major)."""
    header, offset = {}, 0
    for name, dtype, shape, _ in entries:
        size = _ELEMENT_SIZE[dtype]
        for d in shape:
            size *= d
        header[name] = {"dtype": _DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, dtype, _, chunks in entries:
            written, (lo, hi) = 0, header[name]["data_offsets"]
            for t in chunks():
                t = t.detach().contiguous().cpu()
                if t.dtype != dtype:
                    raise ValueError(f"{name}: chunk dtype {t.dtype}, want {dtype}")
                raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
                f.write(raw)
                written += len(raw)
            if written != hi - lo:
                raise ValueError(f"{name}: wrote {written} bytes, want {hi - lo}")


def read_header(path):
    """The JSON header: {name: {dtype, shape, data_offsets}} (and __metadata__)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        dtype = _BY_NAME[info["dtype"]]
        buf = bytearray(data[base + lo:base + hi])
        t = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(dtype).reshape(info["shape"]).clone()
    return out
