"""mcref: the Python reference of the MC language model (docs/mc-model.md).

Written from the spec, independently of the C++ server: a plain recurrent
form (one token at a time, the spec read literally) and a chunked parallel
form (used for training), plus a safetensors exporter, the recall task data
generator and a trainer. Runs on Debian's python3-torch (/usr/bin/python3).
The deep memory (memory.kind = "mlp", section 9) is deep_memory (both forms)
and deep_cases (its parity cases).
For fla checkpoints (delta_net, gated_deltanet; mc-model.md section 10):
fla_model (the oracle, from fla's equations), fla_checkpoint (random
checkpoints in fla's layout) and fla_cases (their parity cases).
"""
