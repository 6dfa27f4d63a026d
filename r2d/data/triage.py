"""SYNTHETIC triage notes: a seeded stand-in for the paper's private nurse-triage data.

The paper's data cannot be had; this generator has its shape (its Table 1). A note describes a
caller (age, complaint, severity, duration, vitals, red flags, distractors). Protocol rules decide
one of five dispositions, and each example carries the same content as three rationales:
  - `nurse`      terse protocol-rule text: "[1] Earache AND [2] MODERATE pain AND [3] > 3 days - yes"
  - `nurse_post` one short sentence (the nurse text post-processed)
  - `llm`        two or three fluent sentences that also give the reason for the disposition
It is made *not* trivially separable so that predicted labels are sometimes wrong and exposure
bias is real: a share of cases (`subtle_fraction`) is decided by a subtle cue (a vital just past a
threshold, or a red flag that is mentioned but negated, which must not count), and a share of
labels (`label_noise`) is moved one step, as nurses disagree. Same config -> same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from r2d.config import DataConfig
from r2d.data.base import DataError, Dataset, Example, check_examples, check_labels, split_three_ways

DISPOSITIONS = ["home care", "routine visit", "see doctor today", "emergency department", "call ambulance"]
SOURCES = ["llm", "nurse", "nurse_post"]

# complaint -> (protocol name, body-part phrase, its red flags (critical ones call an ambulance))
COMPLAINTS = {
    "earache": ("Earache", "ear pain", ["severe headache with stiff neck", "swelling behind the ear"]),
    "abdominal pain": ("Abdominal Pain", "abdominal pain", ["vomiting blood", "rigid abdomen"]),
    "headache": ("Headache", "headache", ["sudden worst headache of life", "new confusion"]),
    "chest pain": ("Chest Pain", "chest pain", ["shortness of breath", "pain spreading to the left arm"]),
    "cough": ("Cough", "cough", ["coughing up blood", "blue lips"]),
    "back pain": ("Back Pain", "back pain", ["loss of bladder control", "numbness in both legs"]),
    "sore throat": ("Sore Throat", "throat pain", ["drooling and unable to swallow", "noisy breathing"]),
    "dizziness": ("Dizziness", "dizziness", ["fainting", "slurred speech"]),
    "rash": ("Rash", "rash", ["purple spots that do not fade", "swelling of the face"]),
    "fever": ("Fever", "fever", ["stiff neck", "new confusion"]),
}
CRITICAL_FLAGS = {
    "shortness of breath",
    "pain spreading to the left arm",
    "blue lips",
    "slurred speech",
    "noisy breathing",
    "vomiting blood",
    "purple spots that do not fade",
    "swelling of the face",
}
SEVERITIES = ["mild", "moderate", "severe"]
DISTRACTORS = [
    "Lives with partner.",
    "Took paracetamol this morning.",
    "No known allergies.",
    "Has a history of seasonal allergies.",
    "Recently returned from a work trip.",
    "Drinks coffee daily.",
    "Up to date with vaccinations.",
    "Calling from home.",
    "Reports poor sleep.",
    "Takes vitamin D.",
]
FEVER_C = 38.5  # the protocol's threshold
TACHY_BPM = 110


@dataclass
class _Case:
    age: int
    sex: str
    complaint: str
    severity: str
    duration_h: int
    temp_c: float
    heart_rate: int
    red_flag: str | None  # present and affirmed
    negated_flag: str | None  # mentioned but denied: must not count
    distractors: list[str]


def _duration_text(hours: int) -> str:
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


def _rules(case: _Case) -> tuple[str, list[str]]:
    """Protocol rules -> (disposition, the rule findings that decided it, in order)."""
    name = COMPLAINTS[case.complaint][0]
    findings = [name]
    if case.red_flag:
        findings.append(case.red_flag.upper())
        level = 4 if case.red_flag in CRITICAL_FLAGS else 3
        return DISPOSITIONS[level], findings
    level = SEVERITIES.index(case.severity)
    findings.append(f"{case.severity.upper()} {COMPLAINTS[case.complaint][1]}")
    if case.duration_h > 72:
        level += 1
        findings.append("present > 3 days")
    if case.temp_c >= FEVER_C:
        level += 1
        findings.append(f"temperature >= {FEVER_C}")
    if case.heart_rate >= TACHY_BPM:
        level += 1
        findings.append(f"heart rate >= {TACHY_BPM}")
    return DISPOSITIONS[min(level, 3)], findings


def _note(case: _Case, rng: random.Random) -> str:
    parts = [
        f"{case.age} y/o {case.sex} calls with {case.complaint} for {_duration_text(case.duration_h)}.",
        f"Describes it as {case.severity}.",
        f"Temp {case.temp_c:.1f}C, HR {case.heart_rate}.",
    ]
    if case.red_flag:
        parts.append(f"Reports {case.red_flag}.")
    if case.negated_flag:
        parts.append(f"Denies {case.negated_flag}.")
    parts += case.distractors
    head, rest = parts[:1], parts[1:]
    rng.shuffle(rest)  # cue order varies, so position is no shortcut
    return " ".join(head + rest)


_PROSE = {
    "present > 3 days": "symptoms for more than 3 days",
    f"temperature >= {FEVER_C}": f"a temperature of at least {FEVER_C}C",
    f"heart rate >= {TACHY_BPM}": f"a heart rate of at least {TACHY_BPM}",
}


def _rationales(case: _Case, disposition: str, findings: list[str]) -> dict[str, str]:
    nurse = " AND ".join(f"[{i}] {f}" for i, f in enumerate(findings, 1)) + " - yes"
    body = COMPLAINTS[case.complaint][1]
    if case.red_flag:
        fact = f"The patient has {body} with {case.red_flag}"
        why = "This is a red flag that needs emergency assessment without delay."
    else:
        extras = [_PROSE.get(f, f.lower()) for f in findings[2:]]
        fact = f"The patient has {case.severity} {body}" + (f" with {', '.join(extras)}" if extras else "")
        why = {
            "home care": "Symptoms are mild and short-lived, so home care with advice to call back is appropriate.",
            "routine visit": "Symptoms warrant review at a routine visit if they persist.",
            "see doctor today": "The combination of findings needs a medical review today.",
            "emergency department": "The findings together need urgent assessment in an emergency department.",
        }[disposition]
    post = fact + "."
    llm = f"{fact}, reported over {_duration_text(case.duration_h)}. {why}"
    return {"nurse": nurse, "nurse_post": post, "llm": llm}


def _case(rng: random.Random, subtle: bool) -> _Case:
    complaint = rng.choice(sorted(COMPLAINTS))
    flags = COMPLAINTS[complaint][2]
    red_flag = rng.choice(flags) if rng.random() < 0.15 else None
    temp = round(rng.uniform(36.4, 38.3) if rng.random() < 0.7 else rng.uniform(38.7, 40.0), 1)
    heart_rate = rng.randint(60, 100) if rng.random() < 0.8 else rng.randint(112, 140)
    negated = None
    if subtle:
        # The deciding cue is small: a vital just either side of its threshold, or a red flag that
        # is mentioned only to be denied.
        kind = rng.choice(["temp", "hr", "negation"])
        if kind == "temp":
            temp = rng.choice([FEVER_C - 0.1, FEVER_C, FEVER_C + 0.1, FEVER_C - 0.2])
        elif kind == "hr":
            heart_rate = rng.choice([TACHY_BPM - 2, TACHY_BPM - 1, TACHY_BPM, TACHY_BPM + 1])
        else:
            red_flag = None
            negated = rng.choice(flags)
    return _Case(
        age=rng.randint(18, 90),
        sex=rng.choice(["female", "male"]),
        complaint=complaint,
        severity=rng.choices(SEVERITIES, weights=[0.45, 0.4, 0.15])[0],
        duration_h=rng.choice([2, 5, 12, 24, 36, 72, 96, 120, 168]),
        temp_c=temp,
        heart_rate=heart_rate,
        red_flag=red_flag,
        negated_flag=negated,
        distractors=rng.sample(DISTRACTORS, rng.randint(0, 2)),
    )


def generate(size: int, label_noise: float, subtle_fraction: float, seed: int) -> list[dict]:
    """Records with id, note, label and one rationale per source. Deterministic in its arguments."""
    rng = random.Random(seed)
    records = []
    for i in range(size):
        case = _case(rng, subtle=rng.random() < subtle_fraction)
        disposition, findings = _rules(case)
        rationales = _rationales(case, disposition, findings)
        label = disposition
        if rng.random() < label_noise:  # nurses disagree by one step, not wildly
            j = DISPOSITIONS.index(disposition) + rng.choice([-1, 1])
            label = DISPOSITIONS[min(max(j, 0), len(DISPOSITIONS) - 1)]
        records.append({"id": f"triage-{seed}-{i:06d}", "note": _note(case, rng), "label": label, **rationales})
    return records


def to_jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")


def load(cfg: DataConfig) -> Dataset:
    source = cfg.rationale_source if cfg.rationale_source != "default" else "llm"
    if source not in SOURCES:
        raise DataError(f"data.rationale_source: {source!r} is not a triage source; expected one of {SOURCES}")
    t = cfg.triage
    records = generate(t.size, t.label_noise, t.subtle_fraction, t.seed)
    examples = [Example(r["id"], r["note"], r["label"], r[source], source) for r in records]
    check_examples(examples, "triage (synthetic)")
    check_labels(examples, DISPOSITIONS, "triage's labels", lambda ex: f"triage (synthetic): id {ex.id}")
    train, dev, test = split_three_ways(examples, cfg)
    return Dataset("triage", list(DISPOSITIONS), train, dev, test, list(SOURCES))
