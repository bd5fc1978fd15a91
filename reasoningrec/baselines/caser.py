"""Caser (Tang & Wang 2018) as a like/dislike classifier.

Horizontal filters (heights 1..k, max-pooled over time) catch union-level sequential patterns,
vertical filters a weighted sum over positions; the resulting sequence vector is joined with the
target item's embedding and an MLP gives one logit. Caser's per-user embedding is left out: the
input is the sample's history only, as for every other method.
"""

from __future__ import annotations

import torch
from torch import nn

from reasoningrec.baselines.layers import HistoryEmbedding


class Caser(nn.Module):
    def __init__(
        self,
        num_items: int,
        max_history: int,
        hidden: int = 64,
        h_filters: int = 16,
        v_filters: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.embed = HistoryEmbedding(num_items, max_history, hidden, dropout)
        self.horizontal = nn.ModuleList(nn.Conv2d(1, h_filters, (h, hidden)) for h in range(1, max_history + 1))
        self.vertical = nn.Conv2d(1, v_filters, (max_history, 1))
        self.sequence = nn.Sequential(
            nn.Linear(h_filters * max_history + v_filters * hidden, hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.target = nn.Embedding(num_items, hidden, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, hist_items: torch.Tensor, hist_signal: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Histories [B, k] + targets [B] → logits [B]."""
        x = self.embed(hist_items, hist_signal).unsqueeze(1)  # [B, 1, k, d]
        pooled = [torch.relu(conv(x)).squeeze(3).amax(dim=2) for conv in self.horizontal]  # each [B, h_filters]
        vertical = self.vertical(x).flatten(1)  # [B, v_filters * d]
        z = self.sequence(torch.cat([*pooled, vertical], dim=1))
        return self.head(torch.cat([z, self.target(target)], dim=1)).squeeze(-1)
