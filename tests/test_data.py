import hashlib
import json
from collections import Counter

import pytest

from r2d.config import load_config
from r2d.data import DataError, load_dataset
from r2d.data import triage as triage_data

FIXTURES = "tests/fixtures"


def data_cfg(*overrides):
    return load_config(None, list(overrides)).data


def test_pubmedqa_official_split(pubmedqa_dir):
    ds = load_dataset(data_cfg("data.dataset=pubmedqa", f"data.path={pubmedqa_dir}"))
    everything = ds.train + ds.dev + ds.test
    assert len(everything) == 1000 and len(ds.test) == 500
    assert Counter(e.label for e in everything) == {"yes": 552, "no": 338, "maybe": 110}
    truth = json.loads((pubmedqa_dir / "test_ground_truth.json").read_text())
    assert {e.id: e.label for e in ds.test} == truth
    assert len(ds.dev) == 100 and not {e.id for e in ds.dev} & {e.id for e in ds.train}
    # dev is stratified: label shares within 2 points of the pool's
    pool = Counter(e.label for e in ds.train + ds.dev)
    for label, n in Counter(e.label for e in ds.dev).items():
        assert abs(n / 100 - pool[label] / 500) < 0.02
    ex = ds.test[0]
    assert ex.input.startswith("question: ") and " context: " in ex.input and ex.rationale


def test_triage_same_seed_same_bytes_and_not_trivial():
    a = triage_data.to_jsonl(triage_data.generate(500, 0.05, 0.3, seed=3))
    b = triage_data.to_jsonl(triage_data.generate(500, 0.05, 0.3, seed=3))
    c = triage_data.to_jsonl(triage_data.generate(500, 0.05, 0.3, seed=4))
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest() != hashlib.sha256(c).digest()
    records = triage_data.generate(2000, 0.1, 0.3, seed=0)
    labels = Counter(r["label"] for r in records)
    assert set(labels) == set(triage_data.DISPOSITIONS) and min(labels.values()) > 40
    assert sum("Denies" in r["note"] for r in records) > 100  # negated red flags: a subtle cue
    r = records[0]
    assert r["nurse"].startswith("[1] ") and r["nurse"].endswith(" - yes")
    assert r["llm"].count(". ") >= 1 and len(r["llm"]) > len(r["nurse_post"])


def test_triage_sources_and_summary():
    ds = load_dataset(data_cfg("data.triage.size=400", "data.rationale_source=nurse"))
    assert ds.rationale_sources == ["llm", "nurse", "nurse_post"]
    assert {e.rationale_source for e in ds.train} == {"nurse"}
    summary = ds.summary()
    assert sum(s["size"] for s in summary["splits"].values()) == 400
    with pytest.raises(DataError, match="data.rationale_source: 'doctor' is not a triage source"):
        load_dataset(data_cfg("data.rationale_source=doctor"))


def test_bioasq_yesno_only():
    ds = load_dataset(data_cfg("data.dataset=bioasq", f"data.path={FIXTURES}/bioasq_taskb.json"))
    everything = ds.train + ds.dev + ds.test
    assert len(everything) == 9 and "q2" not in {e.id for e in everything}
    q4 = next(e for e in everything if e.id == "q4")
    assert q4.label == "yes" and "pack-years" in q4.input and q4.rationale.startswith("Yes; smoking")


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


ROWS = [{"id": f"r{i}", "question": f"q {i}", "label": "yes" if i % 2 else "no", "rationale": f"because {i}"}
        for i in range(20)]


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_jsonl_and_csv(tmp_path):
    ds = load_dataset(data_cfg("data.dataset=jsonl", f"data.path={write(tmp_path, 'a.jsonl', jsonl(ROWS))}"))
    assert ds.labels == ["no", "yes"] and len(ds.train + ds.dev + ds.test) == 20
    csv_text = "id,question,label,rationale\n" + "".join(
        f"{r['id']},{r['question']},{r['label']},{r['rationale']}\n" for r in ROWS)
    ds = load_dataset(data_cfg("data.dataset=csv", f"data.path={write(tmp_path, 'a.csv', csv_text)}"))
    assert len(ds.train + ds.dev + ds.test) == 20


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jsonl", "", "no examples (empty file?)"),
        ("badjson.jsonl", jsonl(ROWS[:3]) + "{not json\n", "line 4: invalid JSON"),
        ("missing.jsonl", jsonl(ROWS[:2] + [{"id": "x", "question": "q", "label": "no"}]),
         "line 3: missing field 'rationale'"),
        ("emptyrat.jsonl", jsonl(ROWS[:2] + [{"id": "x", "question": "q", "label": "no", "rationale": " "}]),
         "line 3: empty field 'rationale'"),
        ("dup.jsonl", jsonl(ROWS[:3] + [ROWS[1]]), "id r1: duplicate id"),
        ("latin1.jsonl", "\xe9t\xe9".encode("latin-1"), "not UTF-8 text"),
    ],
)
def test_bad_tabular_data(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as err:
        load_dataset(data_cfg("data.dataset=jsonl", f"data.path={path}"))
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_bad_pubmedqa_and_bioasq(tmp_path, pubmedqa_dir):
    records = json.loads((pubmedqa_dir / "ori_pqal.json").read_text())
    first = next(iter(records))
    records[first]["final_decision"] = "perhaps"
    (tmp_path / "ori_pqal.json").write_text(json.dumps(records))
    (tmp_path / "test_ground_truth.json").write_text((pubmedqa_dir / "test_ground_truth.json").read_text())
    # the record's line in the file (its final_decision), its id and the declared set
    with pytest.raises(DataError, match=rf"ori_pqal.json:\d+: id {first}: label 'perhaps' is not one of maybe, no, yes "
                                        r"\(pubmedqa's labels\)"):
        load_dataset(data_cfg("data.dataset=pubmedqa", f"data.path={tmp_path}"))
    bad = write(tmp_path, "b.json", json.dumps({"questions": [{"id": "z", "type": "yesno", "body": "b"}]}))
    with pytest.raises(DataError, match="b.json: id z: missing field snippets"):
        load_dataset(data_cfg("data.dataset=bioasq", f"data.path={bad}"))
    with pytest.raises(DataError, match="c.json: line 1: invalid JSON"):
        load_dataset(data_cfg("data.dataset=bioasq", f"data.path={write(tmp_path, 'c.json', '{')}"))


def test_data_summary_cli(pubmedqa_dir, capsys):
    from r2d.cli import main

    assert main(["data", "summary", "--dataset", "pubmedqa", "--data-path", str(pubmedqa_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"]["test"]["size"] == 500
    assert main(["data", "summary", "--dataset", "triage", "--set", "data.triage.size=200"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "triage"
    assert main(["data", "summary", "--dataset", "jsonl"]) == 2
    assert "data.path: the jsonl dataset needs a file" in capsys.readouterr().err
