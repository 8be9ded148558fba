"""Model configuration: the config.json of docs/mc-model.md section 2."""
import dataclasses
import json

RULES = ("hebbian", "delta")
DECAYS = ("none", "scalar")
AGGREGATIONS = ("none", "residual", "mean", "grm", "soup", "ssc")
BOUNDARIES = ("continue", "reset")
GATED = ("grm", "soup", "ssc")


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
            "memory": {"rule": self.rule, "decay": self.decay},
            "mc": dict(
                aggregation=self.aggregation,
                segment_length=self.segment_length,
                boundary=self.boundary,
                gate_scale=self.gate_scale,
                **({"top_k": self.top_k} if self.aggregation == "ssc" else {})),
            "tokenizer": {"type": "byte", "bos_id": self.bos_id, "eos_id": self.eos_id},
        }

    @staticmethod
    def from_json(j):
        if j.get("model_type") != "mc-lm":
            raise ValueError(f"model_type must be 'mc-lm', got {j.get('model_type')!r}")
        mem, mc, tok = j.get("memory", {}), j.get("mc", {}), j.get("tokenizer", {})
        return MCConfig(
            vocab_size=j["vocab_size"], d_model=j["d_model"], n_layers=j["n_layers"],
            n_heads=j["n_heads"], head_dim=j["head_dim"], d_ff=j["d_ff"],
            rms_eps=j.get("rms_eps", 1e-6), tie_embeddings=j.get("tie_embeddings", False),
            rule=mem["rule"], decay=mem["decay"], aggregation=mc["aggregation"],
            segment_length=mc["segment_length"], top_k=mc.get("top_k", 0) or 1,
            boundary=mc.get("boundary", "continue"), gate_scale=mc.get("gate_scale", 1.0),
            bos_id=tok.get("bos_id", 256), eos_id=tok.get("eos_id", 257)).validate()

    @staticmethod
    def load(path):
        with open(path) as f:
            return MCConfig.from_json(json.load(f))
