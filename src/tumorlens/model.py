"""The CNN-LSTM of the reference design, and its CNN-only ablation.

    image (B, 1, S, S)
      -> conv blocks (conv3x3 + BatchNorm + ReLU, then 2x2 max-pool), one per entry of `channels`;
         the last block is not pooled; its ReLU output (gated, with the gate) is the named CAM layer
      -> feature map (B, C, H, W), H = W = S / 2**(len(channels) - 1)
      -> tumour gate (default): f * sigmoid(1x1 conv(f)), (B, C, H, W); the 1x1 conv is trained against tumour
         masks (TrainConfig.seg_weight, masks.py), so the LSTM reads tumour evidence and Grad-CAM finds it
      -> (optional, model.lstm_in = C' > 0) 1x1 conv to C' channels: (B, C', H, W)
      -> rows as time steps: (B, H, C * W)          [the LSTM reads the slice top to bottom; C' * W with lstm_in]
      -> (bi)LSTM -> mean over time steps (B, D)    [mean, not the last state: a last-state LSTM makes
                                                      Grad-CAM glow on the last rows it reads]
      -> dense -> logits (B, num_classes); softmax gives the class probabilities.
The ablation (`head='pool'`) replaces rows->LSTM by global average pooling over (H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class ConvBlock(nn.Sequential):
    """`convs` x (conv3x3 + BatchNorm + ReLU), then an optional 2x2 max-pool (the last module). With `separable`
    every conv after the first is depthwise 3x3 then pointwise 1x1 (ModelConfig.separable)."""

    def __init__(self, cin: int, cout: int, pool: bool, convs: int = 1, separable: bool = False):
        layers: list[nn.Module] = []
        for k in range(convs):
            if k and separable:
                layers += [nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False),
                           nn.Conv2d(cout, cout, 1, bias=False)]
            else:
                layers.append(nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1, bias=False))
            layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)
        self.pooled = pool

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The block up to its last ReLU (before pooling)."""
        for m in list(self)[:-1] if self.pooled else self:
            x = m(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self[-1](x) if self.pooled else x


class TumourGate(nn.Module):
    """f -> f * sigmoid(w . f + b) per position: the last feature map restricted to where a 1x1 conv, trained
    against tumour masks, sees tumour. The LSTM then reads tumour evidence only, so the gradients Grad-CAM
    weighs the activations with live where the tumour is. A no-tumour slice gives a near-empty map, which is
    itself the evidence for `notumor`.

    Both gates share one interface: `score(f, blocks)` gives tumour logits from the last map f and the ReLU
    outputs of every conv block (this one reads f only), `apply(f, s)` gates f with them."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def score(self, f: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(f)  # (B, C, H, W) -> tumour logits (B, 1, H, W)

    def apply(self, f: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return f * torch.sigmoid(s)  # (B, C, H, W), broadcast over channels

    def forward(self, f: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        return self.apply(f, self.score(f, blocks))


class FineGate(nn.Module):
    """The tumour gate with a finer map (`ModelConfig.fine_gate`): a small top-down decoder (feature-pyramid
    style, Lin et al. 2017) computes tumour logits at 4x the last map's resolution from the last map and the
    ReLU outputs of the two blocks before it; the tumour probabilities are pooled back to the last map's grid
    with a log-sum-exp (a soft maximum, so a tumour smaller than a cell still opens its cell) and multiply it.
    The classifier's gradient then reaches the fine map, which `explain` reads for its finer methods."""

    SHARPNESS = 8.0  # log-sum-exp pooling: 0 would be the mean, infinity the maximum

    def __init__(self, c_last: int, c_mid: int, c_early: int, width: int = 32):
        super().__init__()
        half = width // 2
        self.top = nn.Conv2d(c_last, width, 1)
        self.lat_mid = nn.Conv2d(c_mid, width, 1)
        self.mid = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU(inplace=False), nn.Conv2d(width, half, 1))
        self.lat_early = nn.Conv2d(c_early, half, 1)
        self.fine = nn.Sequential(nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half),
                                  nn.ReLU(inplace=False))
        self.out = nn.Conv2d(half, 1, 1)

    def score(self, f: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Last map f (B, C, H, W) and the blocks' ReLU outputs, of which mid = blocks[-2] (B, C_m, 2H, 2W) and
        early = blocks[-3] (B, C_e, 4H, 4W) -> tumour logits (B, 1, 4H, 4W)."""
        mid, early = blocks[-2], blocks[-3]
        t = F.interpolate(self.top(f), scale_factor=2.0, mode="nearest")  # (B, width, 2H, 2W)
        t = self.mid(F.relu(t + self.lat_mid(mid)))  # (B, width/2, 2H, 2W)
        t = F.interpolate(t, scale_factor=2.0, mode="nearest")  # (B, width/2, 4H, 4W)
        return self.out(self.fine(F.relu(t + self.lat_early(early))))  # (B, 1, 4H, 4W)

    def apply(self, f: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Gate the last map f (B, C, H, W) with the fine logits s (B, 1, 4H, 4W)."""
        r = self.SHARPNESS
        p = torch.sigmoid(s)
        g = torch.log(F.avg_pool2d(torch.exp(r * p), 4)) / r  # (B, 1, H, W), between mean and max of p
        return f * g  # broadcast over channels

    def forward(self, f: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        return self.apply(f, self.score(f, blocks))


class TumorNet(nn.Module):
    """CNN -> (rows as a sequence) -> LSTM -> dense. `cam_layer` names the module Grad-CAM hooks."""

    def __init__(self, cfg: ModelConfig = ModelConfig(), image_size: int = 64):
        super().__init__()
        self.cfg = cfg
        chans = (1,) + tuple(cfg.channels)
        n = len(cfg.channels)
        self.features = nn.Sequential(*[ConvBlock(chans[i], chans[i + 1], pool=i < n - 1,
                                                convs=cfg.block_convs[i] if cfg.block_convs else 1,
                                                separable=cfg.separable)
                                      for i in range(n)])
        self.map_size = image_size // 2 ** (n - 1)
        c = chans[-1]
        # the ReLU of the last block (gated, when there is a gate): gradients of the class score w.r.t. its
        # output give Grad-CAM
        self.gate = (FineGate(c, chans[-2], chans[-3]) if cfg.fine_gate else TumourGate(c)) if cfg.gate else None
        self.cam_layer = "gate" if cfg.gate else f"features.{n - 1}.2"
        # (head 'lstm', model.lstm_in > 0) a 1x1 conv that narrows the gated map before the LSTM reads it
        self.squeeze = nn.Conv2d(c, cfg.lstm_in, 1) if cfg.head == "lstm" and cfg.lstm_in else None
        if cfg.head == "lstm":
            self.lstm = nn.LSTM((cfg.lstm_in or c) * self.map_size, cfg.lstm_hidden, batch_first=True,
                                bidirectional=cfg.bidirectional)
            d = cfg.lstm_hidden * (2 if cfg.bidirectional else 1) + (c if cfg.pool_skip else 0)
        elif cfg.head == "pool":
            self.lstm = None
            d = c
        else:
            raise ValueError(f"unknown head {cfg.head!r} (lstm or pool)")
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(d, cfg.dense), nn.ReLU(),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.dense, cfg.num_classes))
        k = int(cfg.seg_blocks)
        if not 0 <= k <= n:
            raise ValueError(f"seg_blocks must be between 0 and {n}, got {k}")
        # mask-guidance heads (training only): one tumour logit per position of each of the last k blocks
        self.seg = nn.ModuleList([nn.Conv2d(chans[i + 1], 1, 1) for i in range(n - k, n)]) if k else None

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 1, S, S) -> last map before the gate (B, C, H, W) and every block's ReLU output before pooling,
        [(B, C_i, h_i, w_i)] first to last (what the fine gate, the mask heads and the multilayer CAM read)."""
        blocks = []
        for block in self.features:
            r = block.body(x)  # conv -> BN -> ReLU (x convs): (B, C_i, h_i, w_i)
            blocks.append(r)
            x = block.pool(r)  # 2x2 max-pool halves h_i, w_i (all but the last block)
        return x, blocks

    def _gate(self, f: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        return f if self.gate is None else self.gate(f, blocks)  # a module call: Grad-CAM hooks "gate"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> last feature map (B, C, H, W) (gated, when there is a gate)."""
        return self._gate(*self._encode(x))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, num_classes)."""
        if self.lstm is None:
            return self.head(f.mean((2, 3)))  # (B, C)
        g = f if self.squeeze is None else self.squeeze(f)  # (B, C, H, W) -> (B, C', H, W), C' = lstm_in
        b, c, h, w = g.shape
        seq = g.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, C', H, W) -> (B, H, C', W) -> (B, H, C'*W)
        out, _ = self.lstm(seq)  # (B, H, D), D = hidden * directions
        z = out.mean(1)  # (B, D)
        if self.cfg.pool_skip:
            z = torch.cat([z, f.mean((2, 3))], 1)  # (B, D + C)
        return self.head(z)  # -> (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K) and every conv block's ReLU output averaged over positions, side by side (B, C_1 +
        ... + C_n), taken before the gate; the last C_n columns are the last map's average. The
        feature-distance refusal reads them: it needs what the image looks like at every scale, not only its
        tumour evidence (a gated map is near zero both for a no-tumour slice and for a photograph), and the
        early blocks' textures and intensities tell CT from MRI where the last map alone did not
        (README, refusal)."""
        f, blocks = self._encode(x)  # (B, C, H, W)
        # [(B, C_i, h_i, w_i)] -> (B, sum C_i). The mean over positions as adaptive_avg_pool2d, not .mean((2, 3)):
        # the same values within float rounding (4e-6 here), but it exports as GlobalAveragePool, which ONNX
        # Runtime computes in its blocked channel layout, where ReduceMean made it convert each block's map back
        # first; the model ran 7% faster (0.73 -> 0.68 ms per input, 1 thread, throwaway timing 2026-11-27)
        pooled = torch.cat([F.adaptive_avg_pool2d(b, 1).flatten(1) for b in blocks], 1)
        return self.forward_head(self._gate(f, blocks)), pooled

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and, with mask heads, one tumour-logit map (B, 1, h_i, w_i) per guided block (finest first).

        Each head reads its block's ReLU output before pooling: the layers the multilayer CAM reads.
        """
        x, blocks = self._encode(x)
        outs = []
        if self.seg is not None:  # (B, 1, h_i, w_i) per guided block, finest first
            outs += [head(r) for head, r in zip(self.seg, blocks[len(blocks) - len(self.seg):])]
        if self.gate is not None:
            s = self.gate.score(x, blocks)  # tumour logits, supervised like the heads: (B, 1, H, W) or 4H x 4W
            outs.append(s)
            x = self.gate.apply(x, s)
        return self.forward_head(x), outs

    @torch.no_grad()
    def tumour_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's tumour probabilities (B, h, w): (B, 1, S, S) -> (B, S/8, S/8) with the plain gate,
        (B, S/2, S/2) with the fine gate. Only for a model with a gate."""
        if self.gate is None:
            raise ValueError("this model has no tumour gate")
        f, blocks = self._encode(x)
        return torch.sigmoid(self.gate.score(f, blocks))[:, 0]

    def get_cam_module(self) -> nn.Module:
        return self.get_submodule(self.cam_layer)


def build_model(cfg: ModelConfig = ModelConfig(), image_size: int = 64) -> TumorNet:
    return TumorNet(cfg, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
