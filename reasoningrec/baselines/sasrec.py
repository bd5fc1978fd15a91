"""SASRec (Kang & McAuley 2018) as a like/dislike classifier.

The target item is appended to the history as the last position (signal code TARGET); causal
self-attention runs over the sequence and the target position's output gives one logit. Trained with
``BCEWithLogitsLoss`` on that logit (the paper's code applied BCE-with-logits to a sigmoided score).
"""

from __future__ import annotations

import torch
from torch import nn

from reasoningrec.baselines.common import TARGET
from reasoningrec.baselines.layers import HistoryEmbedding


class SASRec(nn.Module):
    def __init__(
        self, num_items: int, max_history: int, hidden: int = 64, layers: int = 2, heads: int = 2, dropout: float = 0.2
    ):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"baselines.hidden ({hidden}) must be divisible by baselines.heads ({heads})")
        self.heads = heads
        self.embed = HistoryEmbedding(num_items, max_history + 1, hidden, dropout)
        block = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=hidden * 2, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, hist_items: torch.Tensor, hist_signal: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Histories [B, k] + targets [B] → logits [B]."""
        items = torch.cat([hist_items, target.unsqueeze(1)], dim=1)
        signal = torch.cat([hist_signal, torch.full_like(target, TARGET).unsqueeze(1)], dim=1)
        x = self.embed(items, signal)
        length = items.shape[1]
        # Blocked: future positions and padding keys. Each position may always see itself, so a padded
        # row is never fully masked (a fully masked softmax row would be NaN and poison later layers).
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=items.device), diagonal=1)
        blocked = causal.unsqueeze(0) | (signal == 0).unsqueeze(1)
        blocked = blocked & ~torch.eye(length, dtype=torch.bool, device=items.device).unsqueeze(0)
        mask = blocked.repeat_interleave(self.heads, dim=0)
        out = self.encoder(x, mask=mask)
        return self.head(self.norm(out[:, -1])).squeeze(-1)
