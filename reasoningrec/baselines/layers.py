"""The input layer both sequential baselines share: item + like/dislike signal + position embeddings."""

from __future__ import annotations

import torch
from torch import nn

from reasoningrec.baselines.common import TARGET


class HistoryEmbedding(nn.Module):
    """Embed a left-padded history (and optionally the target as one more position).

    Row 0 of the item and signal tables is padding and stays zero.
    """

    def __init__(self, num_items: int, max_len: int, hidden: int, dropout: float):
        super().__init__()
        self.items = nn.Embedding(num_items, hidden, padding_idx=0)
        self.signal = nn.Embedding(TARGET + 1, hidden, padding_idx=0)
        self.position = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.items.weight, std=0.05)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, items: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """[B, L] item rows and signal codes → [B, L, hidden]; padded positions are zero."""
        positions = torch.arange(items.shape[1], device=items.device).unsqueeze(0)
        x = self.items(items) + self.signal(signal) + self.position(positions)
        return self.dropout(self.norm(x)) * (signal != 0).unsqueeze(-1)
