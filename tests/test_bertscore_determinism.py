"""BERTScore gives the same per-example scores in every process (Python's hash seed included)."""

import subprocess
import sys

SCRIPT = """
import random
from r2d.config import BertScoreConfig
from r2d.scoring.metrics import RationaleBERTScore
rng = random.Random(0)
words = "patient pain fever cough chest urgent routine visit triage nurse advice severe mild".split()
texts = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(160)]
scores = RationaleBERTScore(BertScoreConfig()).score(texts[:80], texts[80:])
print(repr(scores["bertscore_f1"]))
"""


def test_same_scores_under_any_hash_seed():
    outputs = {subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1", "PATH": ""}).stdout
               for seed in ("1", "2", "3")}
    assert len(outputs) == 1 and outputs.pop().startswith("[")
