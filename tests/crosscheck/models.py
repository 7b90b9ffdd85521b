"""Reference PyTorch definitions of minima's networks (nn/models.h), used only by the cross-check
tests. Module and parameter names are chosen so that `state_dict()` keys equal minima's tensor
names, so a minima safetensors file loads here with strict=True. Also holds a minimal safetensors
reader/writer (the format is small enough that the tests need no extra package)."""
import json
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- safetensors ----------------------
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16,
           "I64": torch.int64, "U8": torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """Returns (dict name -> tensor in file order, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = _DTYPES[e["dtype"]]
        raw = bytearray(data[base + b:base + end])
        t = torch.frombuffer(raw, dtype=dt) if len(raw) else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        b = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- networks --------------------------
class MLP(nn.Module):
    def __init__(self, in_features, hidden, classes, bn=False):
        super().__init__()
        mods, prev = [], in_features
        for h in hidden:
            mods += [nn.Linear(prev, h)] + ([nn.BatchNorm1d(h)] if bn else []) + [nn.ReLU()]
            prev = h
        mods.append(nn.Linear(prev, classes))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x.flatten(1))


class SmallCNN(nn.Module):
    def __init__(self, in_chw, classes):
        super().__init__()
        c, h, w = in_chw
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 256), nn.ReLU(),
                                        nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    """The CIFAR VGG with BN; a max-pool whose input is already 1x1 is an Identity (as in minima)."""

    def __init__(self, cfg, in_chw, classes):
        super().__init__()
        c, h, w = in_chw
        layers = []
        for v in cfg:
            if v == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    h, w = h // 2, w // 2
                else:
                    layers.append(nn.Identity())
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        layers.append(nn.AvgPool2d(1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * h * w, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != 4 * planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, 4 * planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, in_chw, classes):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_chw[0], 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * block.expansion, classes)

    def _make_layer(self, block, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # = avg_pool2d(out, 4) on 32x32 inputs
        return self.linear(out)


class DenseLayer(nn.Module):
    def __init__(self, inp, growth):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.conv1 = nn.Conv2d(inp, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.bn = nn.BatchNorm2d(inp)
        self.conv = nn.Conv2d(inp, out, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """DenseNet-BC: depth 6n+4, three dense blocks of n bottleneck layers."""

    def __init__(self, depth, growth, compression, in_chw, classes):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.conv1 = nn.Conv2d(in_chw[0], c, 3, padding=1, bias=False)
        for b in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            setattr(self, "dense%d" % (b + 1), nn.Sequential(*layers))
            if b < 2:
                out = int(c * compression)
                setattr(self, "trans%d" % (b + 1), Transition(c, out))
                c = out
        self.bn = nn.BatchNorm2d(c)
        self.linear = nn.Linear(c, classes)

    def forward(self, x):
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.dense3(out)
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)  # = avg_pool2d(8) on 32x32
        return self.linear(out)


class ConvBNReLU(nn.Module):
    """Zhang et al.'s conv module: conv (bias, "same" padding), BN without affine, ReLU."""

    def __init__(self, inp, out, k, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(inp, out, k, stride, k // 2)
        self.bn = nn.BatchNorm2d(out, affine=False)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, inp, ch1, ch3):
        super().__init__()
        self.branch1 = ConvBNReLU(inp, ch1, 1)
        self.branch3 = ConvBNReLU(inp, ch3, 3)

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x)], 1)


class Downsample(nn.Module):
    def __init__(self, inp, ch3):
        super().__init__()
        self.conv = ConvBNReLU(inp, ch3, 3, 2)

    def forward(self, x):
        return torch.cat([self.conv(x), F.max_pool2d(x, 3, 2, 1)], 1)


class InceptionSmall(nn.Module):
    def __init__(self, in_chw, classes):
        super().__init__()
        self.conv1 = ConvBNReLU(in_chw[0], 96, 3)
        mods, c = [], 96
        for kind, a, b in [("i", 32, 32), ("i", 32, 48), ("d", 80, 0), ("i", 112, 48), ("i", 96, 64),
                           ("i", 80, 80), ("i", 48, 96), ("d", 96, 0), ("i", 176, 160), ("i", 176, 160)]:
            if kind == "i":
                mods.append(Inception(c, a, b))
                c = a + b
            else:
                mods.append(Downsample(c, a))
                c += a
        self.blocks = nn.Sequential(*mods)
        self.linear = nn.Linear(c, classes)

    def forward(self, x):
        return self.linear(self.blocks(self.conv1(x)).mean((2, 3)))


class AlexNetSmall(nn.Module):
    def __init__(self, in_chw, classes):
        super().__init__()
        c, h, w = in_chw
        mods = []
        for _ in range(2):
            mods += [nn.Conv2d(c, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                     nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)]
            c, h, w = 64, (h - 1) // 2 + 1, (w - 1) // 2 + 1
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 384), nn.ReLU(), nn.Linear(384, 192),
                                        nn.ReLU(), nn.Linear(192, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build(arch, in_chw, classes):
    c, h, w = in_chw
    if arch == "mlp":
        return MLP(c * h * w, [512, 512], classes)
    if arch == "mlp-bn":
        return MLP(c * h * w, [512, 512], classes, bn=True)
    if arch == "mlp1x512":
        return MLP(c * h * w, [512], classes)
    if arch == "mlp3x512":
        return MLP(c * h * w, [512, 512, 512], classes)
    if arch == "smallcnn":
        return SmallCNN(in_chw, classes)
    if arch == "vgg16":
        return VGG(VGG16_CFG, in_chw, classes)
    if arch == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], in_chw, classes)
    if arch == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], in_chw, classes)
    if arch == "densenet40":
        return DenseNet(40, 12, 0.5, in_chw, classes)
    if arch == "inception-small":
        return InceptionSmall(in_chw, classes)
    if arch == "alexnet-small":
        return AlexNetSmall(in_chw, classes)
    raise ValueError("unknown architecture " + arch)


if __name__ == "__main__":
    for a in ["mlp", "mlp-bn", "mlp1x512", "mlp3x512", "smallcnn", "vgg16", "resnet18", "resnet50", "densenet40",
              "inception-small", "alexnet-small"]:
        m = build(a, (3, 32, 32), 10)
        print(a, sum(p.numel() for p in m.parameters()))
