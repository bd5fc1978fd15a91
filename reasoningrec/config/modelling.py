"""Settings of the modelling stages: records, LoRA training, evaluation, the baselines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reasoningrec import methods as method_table
from reasoningrec.config.base import Section


class RecordsConfig(Section):
    k_shots: list[int] = [64, 128, 256]
    valid_size: int = Field(100, ge=1)
    max_length: int = Field(2048, ge=64)
    seed: int = 42
    # Record variants to build (reasoningrec.methods.VARIANTS says what each needs and writes).
    variants: list[str] = Field(default_factory=lambda: list(method_table.VARIANTS))

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in method_table.VARIANTS]
        if unknown:
            raise ValueError(f"unknown record variant(s) {unknown} (known: {', '.join(method_table.VARIANTS)})")
        return value


class TrainConfig(Section):
    base_model: str = "embedded"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "v_proj"]
    learning_rate: float = Field(3e-4, gt=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    patience: int = Field(5, ge=1)
    answer_loss_weight: float = Field(50.0, gt=0)
    # Recompute activations in the backward pass: saves GPU memory, costs ~40% of LoRA throughput
    # (benchmarks: 7B bf16 at 2048 tokens runs in 23 GB without it). Off unless memory is short.
    gradient_checkpointing: bool = False
    # torch.compile the model on CUDA: 15,827 vs 13,375 tokens/s (43.1% vs 36.5% MFU) for a 7B LoRA
    # through the SFTTrainer on an H200, after a ~86 s warm-up. auto: on for base models of at least
    # COMPILE_MIN_PARAMS parameters (where the warm-up is small next to the run), off for SmolLM2.
    compile: bool | Literal["auto"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "nf4", "int8"] = "auto"
    seed: int = 42


class EvaluateConfig(Section):
    bertscore_model: str = "embedded"
    bertscore_num_layers: int = Field(6, ge=1)
    explain_max_new_tokens: int = Field(256, ge=1)
    explain_limit: int | None = 50
    explain_decode: Literal["auto", "generate", "static"] = "auto"  # as llm.decode
    # consistent: the explanation is written after the scored label (every one parses and agrees);
    # free: the paper's free generation (parse rate and stated-vs-scored agreement are reported).
    explanations: Literal["consistent", "free"] = "consistent"


class BaselinesConfig(Section):
    epochs: int = Field(50, ge=1)
    patience: int = Field(5, ge=1)
    hidden: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    seeds: list[int] = [0, 1, 2]
    batch_size: int = Field(256, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    # SASRec self-attention blocks and heads (hidden must be divisible by heads).
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    # Caser: number of horizontal filters per height and of vertical filters.
    caser_h_filters: int = Field(16, ge=1)
    caser_v_filters: int = Field(4, ge=1)
    # Items of history fed to SASRec/Caser; null = the dataset's history_len (what the LLM sees).
    max_history: int | None = Field(None, ge=1)
    # Item like-rate heuristic: Beta prior worth this many pseudo-interactions at the global rate.
    item_prior_strength: float = Field(5.0, ge=0)
