"""The CNN-LSTM of the reference design, and its CNN-only ablation.

    image (B, 1, S, S)
      -> conv blocks (conv3x3 + BatchNorm + ReLU, then 2x2 max-pool), one per entry of `channels`;
         the last block is not pooled and its ReLU output is the named CAM layer
      -> feature map (B, C, H, W), H = W = S / 2**(len(channels) - 1)
      -> rows as time steps: (B, H, C * W)          [the LSTM reads the slice top to bottom]
      -> (bi)LSTM -> mean over time steps (B, D)    [mean, not the last state: a last-state LSTM makes
                                                      Grad-CAM glow on the last rows it reads]
      -> dense -> logits (B, num_classes); softmax gives the class probabilities.
The ablation (`head='pool'`) replaces rows->LSTM by global average pooling over (H, W).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, pool: bool):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                   nn.ReLU(inplace=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class TumorNet(nn.Module):
    """CNN -> (rows as a sequence) -> LSTM -> dense. `cam_layer` names the module Grad-CAM hooks."""

    def __init__(self, cfg: ModelConfig = ModelConfig(), image_size: int = 64):
        super().__init__()
        self.cfg = cfg
        chans = (1,) + tuple(cfg.channels)
        n = len(cfg.channels)
        self.features = nn.Sequential(*[ConvBlock(chans[i], chans[i + 1], pool=i < n - 1) for i in range(n)])
        self.map_size = image_size // 2 ** (n - 1)
        c = chans[-1]
        # the ReLU of the last block: gradients of the class score w.r.t. its output give Grad-CAM
        self.cam_layer = f"features.{n - 1}.2"
        if cfg.head == "lstm":
            self.lstm = nn.LSTM(c * self.map_size, cfg.lstm_hidden, batch_first=True,
                                bidirectional=cfg.bidirectional)
            d = cfg.lstm_hidden * (2 if cfg.bidirectional else 1)
        elif cfg.head == "pool":
            self.lstm = None
            d = c
        else:
            raise ValueError(f"unknown head {cfg.head!r} (lstm or pool)")
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(d, cfg.dense), nn.ReLU(),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.dense, cfg.num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] -> last feature map (B, C, H, W)."""
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, num_classes)."""
        if self.lstm is None:
            return self.head(f.mean((2, 3)))  # (B, C)
        b, c, h, w = f.shape
        seq = f.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, C, H, W) -> (B, H, C, W) -> (B, H, C*W)
        out, _ = self.lstm(seq)  # (B, H, D), D = hidden * directions
        return self.head(out.mean(1))  # (B, D) -> (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_cam_module(self) -> nn.Module:
        return self.get_submodule(self.cam_layer)


def build_model(cfg: ModelConfig = ModelConfig(), image_size: int = 64) -> TumorNet:
    return TumorNet(cfg, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
