"""LLM-as-a-judge: rate a rationale against the reference through an OpenAI-compatible chat endpoint.

The API key is read from the environment variable named in config and is never logged or
written. With no endpoint, or no key, the metric is skipped and `JudgeClient.skip_reason` says why.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

from r2d.config import JudgeConfig

PROMPT = (
    "You grade explanations for clinical decisions. Reference rationale:\n{ref}\n\n"
    "Decision: {label}\nCandidate rationale:\n{hyp}\n\n"
    "Does the candidate justify the decision as well as the reference does, without contradictions? "
    "Answer with one integer from 1 (not at all) to 5 (fully)."
)


class JudgeError(RuntimeError):
    pass


class JudgeClient:
    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self._key = os.environ.get(cfg.api_key_env)
        self.skip_reason: str | None = None
        if not cfg.endpoint:
            self.skip_reason = "evaluation.judge.endpoint is not set"
        elif not self._key:
            self.skip_reason = f"${cfg.api_key_env} is not set"

    @property
    def enabled(self) -> bool:
        return self.skip_reason is None

    def signature(self) -> str:
        return f"judge|model:{self.cfg.model}|scale:1-5->0-1|prompt:v1"

    def _chat(self, content: str) -> str:
        url = self.cfg.endpoint.rstrip("/") + "/chat/completions"
        body = json.dumps(
            {"model": self.cfg.model, "messages": [{"role": "user", "content": content}], "temperature": 0}
        ).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                payload = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as err:
            raise JudgeError(f"evaluation.judge.endpoint {self.cfg.endpoint}: {err}") from None
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"evaluation.judge.endpoint {self.cfg.endpoint}: not a chat completion reply") from None

    def score_one(self, hyp: str, ref: str, label: str) -> float:
        """The judge's 1-5 grade mapped to [0, 1]; NaN when the reply holds no grade."""
        reply = self._chat(PROMPT.format(ref=ref, hyp=hyp, label=label))
        match = re.search(r"[1-5]", reply)
        return (int(match.group()) - 1) / 4 if match else float("nan")

    def score(self, hyps: list[str], refs: list[str], labels: list[str]) -> list[float]:
        n = len(hyps) if self.cfg.max_examples is None else min(len(hyps), self.cfg.max_examples)
        scores = [self.score_one(h, r, lab) for h, r, lab in zip(hyps[:n], refs[:n], labels[:n], strict=True)]
        return scores + [float("nan")] * (len(hyps) - n)
