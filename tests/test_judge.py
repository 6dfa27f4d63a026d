"""The LLM judge against a real local HTTP server speaking the OpenAI chat protocol."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from r2d.config import JudgeConfig
from r2d.scoring.judge import JudgeClient, JudgeError


class ChatHandler(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ChatHandler.seen.append((self.path, self.headers.get("Authorization"), body))
        text = body["messages"][0]["content"]
        grade = "5" if "fever" in text.split("Candidate rationale:")[1] else "Grade: 1"
        reply = {"choices": [{"message": {"role": "assistant", "content": grade}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = HTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_judge_scores_through_chat_endpoint(server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-secret")
    client = JudgeClient(JudgeConfig(endpoint=server, api_key_env="TEST_JUDGE_KEY", model="m"))
    assert client.enabled
    scores = client.score(["high fever", "nothing"], ["ref a", "ref b"], ["see doctor today", "home care"])
    assert scores == [1.0, 0.0]
    path, auth, body = ChatHandler.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-secret" and body["model"] == "m"
    assert "sk-secret" not in client.signature()


def test_judge_skipped_without_endpoint_or_key(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    assert JudgeClient(JudgeConfig()).skip_reason == "evaluation.judge.endpoint is not set"
    c = JudgeClient(JudgeConfig(endpoint="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY"))
    assert not c.enabled and c.skip_reason == "$NO_SUCH_KEY is not set"


def test_judge_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "k")
    c = JudgeClient(JudgeConfig(endpoint="http://127.0.0.1:9/v1", api_key_env="TEST_JUDGE_KEY", timeout_s=2))
    with pytest.raises(JudgeError, match="evaluation.judge.endpoint http://127.0.0.1:9/v1"):
        c.score_one("a", "b", "c")
