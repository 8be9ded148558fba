"""A recall_table job gives the same result in whichever worker process runs it.

Each table worker is a fresh interpreter with its own string-hash seed, so
anything that follows a set's order differs between workers while staying the
same within one process (where the other tests run). Here each run is a
separate process with another PYTHONHASHSEED, in the table's worker
environment; models that are the same function on every training sequence
(grm, soup, ssc with top_k >= the checkpoints present) must train to the same
bits."""
import os
import subprocess
import sys
import unittest

from mcref import recall_table

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the models named in argv one after another (like jobs in a reused pool
# worker) on a tiny table config and prints, tab-separated, each one's name, a
# digest of its trained parameters and the table's result for it.
JOB = r"""
import hashlib, random, sys
from mcref import data, recall_table, train
base = recall_table.parse_cli(["--steps", "3", "--d_model", "32", "--n_heads", "2",
                               "--head_dim", "8", "--d_ff", "64", "--batch", "8",
                               "--eval_examples", "8", "--difficulties", "4,8"])
models = dict(recall_table.MODELS)
for name in sys.argv[1:]:
    model, _ = train.train(recall_table.run_args(base, models[name], seed=1))
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.contiguous().numpy().tobytes())
    _, _, accs, by_query, _ = recall_table.run_one((name, models[name], 1, base))
    print(name, h.hexdigest(), accs, by_query, sep="\t")
print("data", data.recall_eval_set(4, 6, 4, seed=0, key_len=1, value_len=1)[0].tolist(),
      sep="\t")
"""


def run_worker(hash_seed, *models):
    """{model: (digest, accuracies, by-query)} and the eval data, from one process."""
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), OMP_NUM_THREADS="1",
               **recall_table.WORKER_ENV)
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", JOB, *models], env=env, cwd=HERE,
                         capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise AssertionError(out.stderr)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    return {r[0]: tuple(r[1:]) for r in rows if r[0] != "data"}, rows[-1][1]


class SameResultInAnyWorkerTest(unittest.TestCase):
    def test_identical_functions_train_identically_in_different_workers(self):
        a, data_a = run_worker(1, "grm", "soup")
        b, data_b = run_worker(2, "ssc k=4", "grm")
        self.assertEqual(data_a, data_b, "the held-out examples depend on the hash seed")
        # the same job in two workers, after different earlier jobs
        self.assertEqual(a["grm"], b["grm"])
        # soup = grm and ssc k >= n = grm on every training sequence: same bits
        self.assertEqual(a["soup"], a["grm"])
        self.assertEqual(b["ssc k=4"], a["grm"])


if __name__ == "__main__":
    unittest.main()
