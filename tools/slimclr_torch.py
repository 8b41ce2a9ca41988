#!/usr/bin/env python3
"""Load a slimclr safetensors export (one width of a slimmable ResNet) into PyTorch.

torchvision's constructors only build standard widths and stems, so this file builds the exported shape itself,
with torchvision's parameter names (conv1.weight, bn1.*, layer1.0.conv1.weight, layer1.0.downsample.0.weight,
fc.*), and loads the file with strict=True. Everything is inferred from the tensor shapes:
  - stem: conv1 kernel 7 -> ImageNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool); 3 -> small-image stem (3x3/1, no pool)
  - input channels: conv1.weight.shape[1] (1 or 3)
  - block type: bottleneck when layer1.0.conv3.weight exists, else basic; blocks per stage and channels per layer
    from the shapes; stride 2 on the first block of stages 2-4 (on conv2 of a bottleneck, torchvision v1.5;
    on conv1 of a basic block), overridable with the metadata key "strides" (e.g. "1,2,2,2")
  - head: fc.weight/fc.bias -> Linear (a probe or classifier); no fc.* -> the pooled features are returned.
Metadata written by `slimclr export` (e.g. width, depth) is printed, not needed.

The file is read with the standard library and numpy (read_safetensors below): no `safetensors` package is needed
(Debian's python3-torch ships without it).

Usage:  python3 tools/slimclr_torch.py model.safetensors [--img 28]
In code: model, meta = load_slimclr("model.safetensors"); model.eval()
"""
import json
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file: an 8-byte little-endian header length, a JSON header (name ->
    dtype, shape, data_offsets relative to the data that follows; "__metadata__" -> strings), then the data."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("%s: too short for a safetensors file" % path)
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        if not 0 <= b <= end <= len(data):
            raise ValueError("%s: tensor %s: data_offsets %s outside the %d data bytes" % (path, name, (b, end),
                                                                                         len(data)))
        if e["dtype"] == "BF16":  # numpy has no bfloat16: the raw 16-bit words, reinterpreted by torch
            t = torch.from_numpy(np.frombuffer(data, np.int16, (end - b) // 2, b).copy()).view(torch.bfloat16)
        elif e["dtype"] in _DTYPES:
            dt = np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<")
            t = torch.from_numpy(np.frombuffer(data, dt, (end - b) // dt.itemsize, b).astype(dt.newbyteorder("=")))
        else:
            raise ValueError("%s: tensor %s: unsupported dtype %s" % (path, name, e["dtype"]))
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


class BasicBlock(nn.Module):
    def __init__(self, sd, p, stride):
        super().__init__()
        w1, w2 = sd[p + "conv1.weight"], sd[p + "conv2.weight"]
        self.conv1 = nn.Conv2d(w1.shape[1], w1.shape[0], 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1.shape[0])
        self.conv2 = nn.Conv2d(w2.shape[1], w2.shape[0], 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2.shape[0])
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_downsample(sd, p, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    def __init__(self, sd, p, stride):
        super().__init__()
        w1, w2, w3 = sd[p + "conv1.weight"], sd[p + "conv2.weight"], sd[p + "conv3.weight"]
        self.conv1 = nn.Conv2d(w1.shape[1], w1.shape[0], 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1.shape[0])
        self.conv2 = nn.Conv2d(w2.shape[1], w2.shape[0], 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2.shape[0])
        self.conv3 = nn.Conv2d(w3.shape[1], w3.shape[0], 1, bias=False)
        self.bn3 = nn.BatchNorm2d(w3.shape[0])
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_downsample(sd, p, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


def make_downsample(sd, p, stride):
    key = p + "downsample.0.weight"
    if key not in sd:
        return None
    w = sd[key]
    return nn.Sequential(nn.Conv2d(w.shape[1], w.shape[0], 1, stride, bias=False), nn.BatchNorm2d(w.shape[0]))


class SlimclrResNet(nn.Module):
    def __init__(self, sd, strides=(1, 2, 2, 2)):
        super().__init__()
        w = sd["conv1.weight"]
        k = w.shape[2]
        self.imagenet_stem = k == 7
        self.conv1 = nn.Conv2d(w.shape[1], w.shape[0], k, 2 if k == 7 else 1, k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(w.shape[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if self.imagenet_stem else nn.Identity()
        block = Bottleneck if "layer1.0.conv3.weight" in sd else BasicBlock
        for s in range(1, 5):
            nblocks = len({int(m.group(1)) for key in sd
                           for m in [re.match(r"layer%d\.(\d+)\.conv1\.weight$" % s, key)] if m})
            if nblocks == 0:
                raise ValueError("no layer%d.*.conv1.weight in the file: not a 4-stage ResNet export" % s)
            blocks = [block(sd, "layer%d.%d." % (s, b), strides[s - 1] if b == 0 else 1) for b in range(nblocks)]
            setattr(self, "layer%d" % s, nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        if "fc.weight" in sd:
            fw = sd["fc.weight"]
            self.fc = nn.Linear(fw.shape[1], fw.shape[0], bias="fc.bias" in sd)
        else:
            self.fc = nn.Identity()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_slimclr(path):
    sd, meta = read_safetensors(path)
    strides = tuple(int(v) for v in meta["strides"].split(",")) if "strides" in meta else (1, 2, 2, 2)
    model = SlimclrResNet(sd, strides)
    # num_batches_tracked is not exported: fill it so that strict loading checks every other name
    for name, buf in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in sd:
            sd[name] = torch.zeros_like(buf)
    model.load_state_dict(sd, strict=True)
    return model, meta


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    img = int(sys.argv[sys.argv.index("--img") + 1]) if "--img" in sys.argv else 28
    model, meta = load_slimclr(sys.argv[1])
    model.eval()
    in_ch = model.conv1.in_channels
    with torch.no_grad():
        out = model(torch.zeros(2, in_ch, img, img))
    n = sum(p.numel() for p in model.parameters())
    print("metadata:", meta)
    print("stem: %s, in_ch %d, params %d, output %s" % ("imagenet" if model.imagenet_stem else "small", in_ch, n,
                                                        tuple(out.shape)))
