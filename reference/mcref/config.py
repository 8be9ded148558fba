"""Model configuration: the config.json of docs/mc-model.md section 2."""
import dataclasses
import json
from typing import Optional

RULES = ("hebbian", "delta")
DECAYS = ("none", "scalar")
AGGREGATIONS = ("none", "residual", "mean", "grm", "soup", "ssc")
BOUNDARIES = ("continue", "reset")
GATED = ("grm", "soup", "ssc")
MEMORY_KINDS = ("linear", "mlp")
# config.json keys of the deep memory (section 9), only for memory.kind = "mlp"
DEEP_KEYS = ("expansion", "chunk", "lr_max", "momentum", "grad_clip")


@dataclasses.dataclass
class MCConfig:
    vocab_size: int = 258
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    head_dim: int = 32
    d_ff: int = 384
    rms_eps: float = 1e-6
    tie_embeddings: bool = False
    rule: str = "delta"
    decay: str = "scalar"
    aggregation: str = "grm"
    segment_length: int = 32
    top_k: int = 2
    boundary: str = "continue"
    gate_scale: float = 1.0
    bos_id: int = 256
    eos_id: int = 257
    # Deep memory (docs/mc-model.md section 9); ignored for memory_kind "linear".
    memory_kind: str = "linear"
    expansion: int = 4              # E: hidden width E*d of the memory MLP
    mem_chunk: int = 1              # b: tokens per write
    lr_max: Optional[float] = None  # theta = lr_max * sigmoid(W_b x + b_b); required for mlp
    momentum: bool = True
    grad_clip: float = 0.0          # 0: off

    def validate(self):
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        need(self.rule in RULES, f"memory.rule must be one of {RULES}, got {self.rule!r}")
        need(self.decay in DECAYS, f"memory.decay must be one of {DECAYS}, got {self.decay!r}")
        need(self.aggregation in AGGREGATIONS,
             f"mc.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        need(self.boundary in BOUNDARIES,
             f"mc.boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        need(self.segment_length >= 1, "mc.segment_length must be >= 1")
        need(self.aggregation != "ssc" or self.top_k >= 1, "mc.top_k must be >= 1 for ssc")
        need(self.vocab_size >= 258, "vocab_size must be >= 258 for the byte tokenizer")
        for f in ("d_model", "n_layers", "n_heads", "head_dim", "d_ff"):
            need(getattr(self, f) >= 1, f"{f} must be >= 1")
        need(self.memory_kind in MEMORY_KINDS,
             f"memory.kind must be one of {MEMORY_KINDS}, got {self.memory_kind!r}")
        if self.memory_kind == "mlp":
            need(self.rule == "delta",
                 f"memory.rule must be 'delta' for memory.kind = 'mlp', got {self.rule!r}")
            need(_is_int(self.expansion) and self.expansion >= 1,
                 f"memory.expansion must be an integer >= 1, got {self.expansion!r}")
            need(_is_int(self.mem_chunk) and self.mem_chunk >= 1,
                 f"memory.chunk must be an integer >= 1, got {self.mem_chunk!r}")
            need(self.segment_length % self.mem_chunk == 0,
                 f"memory.chunk ({self.mem_chunk}) must divide mc.segment_length "
                 f"({self.segment_length})")
            need(self.lr_max is not None, "memory.lr_max is required for memory.kind = 'mlp'")
            need(_is_num(self.lr_max) and self.lr_max > 0,
                 f"memory.lr_max must be a number > 0, got {self.lr_max!r}")
            need(isinstance(self.momentum, bool),
                 f"memory.momentum must be true or false, got {self.momentum!r}")
            need(_is_num(self.grad_clip) and self.grad_clip >= 0,
                 f"memory.grad_clip must be a number >= 0, got {self.grad_clip!r}")
        return self

    def to_json(self):
        return {
            "model_type": "mc-lm",
            "vocab_size": self.vocab_size,
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "head_dim": self.head_dim,
            "d_ff": self.d_ff,
            "rms_eps": self.rms_eps,
            "tie_embeddings": self.tie_embeddings,
            "memory": self._memory_json(),
            "mc": dict(
                aggregation=self.aggregation,
                segment_length=self.segment_length,
                boundary=self.boundary,
                gate_scale=self.gate_scale,
                **({"top_k": self.top_k} if self.aggregation == "ssc" else {})),
            "tokenizer": {"type": "byte", "bos_id": self.bos_id, "eos_id": self.eos_id},
        }

    def _memory_json(self):
        if self.memory_kind == "linear":
            return {"rule": self.rule, "decay": self.decay}   # exactly the pre-section-9 form
        return {"kind": self.memory_kind, "rule": self.rule, "decay": self.decay,
                "expansion": self.expansion, "chunk": self.mem_chunk,
                "lr_max": float(self.lr_max), "momentum": self.momentum,
                "grad_clip": float(self.grad_clip)}

    @staticmethod
    def from_json(j):
        if j.get("model_type") != "mc-lm":
            raise ValueError(f"model_type must be 'mc-lm', got {j.get('model_type')!r}")
        mem, mc, tok = j.get("memory", {}), j.get("mc", {}), j.get("tokenizer", {})
        kind = mem.get("kind", "linear")
        deep = {}
        if kind == "mlp":
            if "lr_max" not in mem:
                raise ValueError("memory.lr_max is required for memory.kind = 'mlp'")
            deep = dict(expansion=mem.get("expansion", 4), mem_chunk=mem.get("chunk", 1),
                        lr_max=mem["lr_max"], momentum=mem.get("momentum", True),
                        grad_clip=mem.get("grad_clip", 0.0))
        else:
            for key in DEEP_KEYS:
                if key in mem:
                    raise ValueError(f"memory.{key} is only for memory.kind = 'mlp' "
                                     f"(memory.kind is {kind!r})")
        return MCConfig(
            vocab_size=j["vocab_size"], d_model=j["d_model"], n_layers=j["n_layers"],
            n_heads=j["n_heads"], head_dim=j["head_dim"], d_ff=j["d_ff"],
            rms_eps=j.get("rms_eps", 1e-6), tie_embeddings=j.get("tie_embeddings", False),
            rule=mem["rule"], decay=mem["decay"], aggregation=mc["aggregation"],
            segment_length=mc["segment_length"], top_k=mc.get("top_k", 0) or 1,
            boundary=mc.get("boundary", "continue"), gate_scale=mc.get("gate_scale", 1.0),
            bos_id=tok.get("bos_id", 256), eos_id=tok.get("eos_id", 257),
            memory_kind=kind, **deep).validate()

    @staticmethod
    def load(path):
        with open(path) as f:
            return MCConfig.from_json(json.load(f))


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)
