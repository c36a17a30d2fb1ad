"""The OpenAI-compatible backend against a real HTTP server on localhost that serves a tiny model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from obliviate.errors import ObliviateError
from obliviate.models import load_model
from obliviate.models.generation import Sampling
from obliviate.unstar.associations import Association
from obliviate.unstar.backends import ChatBackend, LocalChatModel, OpenAIChatModel, TemplateBackend
from obliviate.unstar.pipeline import collect

PARIS = Association("france", "France", "capital", "Paris", "What is the capital of France?", "Paris", "city")


def _handler(chat: LocalChatModel, seen: list[dict]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body | {"path": self.path, "auth": self.headers.get("Authorization")})
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            sampling = Sampling(body.get("temperature", 0.0), body.get("top_p", 1.0), body["max_tokens"], 1)
            # like some real servers: at most 2 choices per request, so the client must top up
            n = min(body.get("n", 1), 2)
            replies = [chat.complete([body["messages"][-1]["content"]], sampling, body.get("seed", 0) + k)[0][0]
                       for k in range(n)]  # fmt: skip
            payload = {"object": "chat.completion", "model": body["model"],
                       "choices": [{"index": k, "message": {"role": "assistant", "content": r}, "finish_reason": "stop"}
                                   for k, r in enumerate(replies)]}  # fmt: skip
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(scope="module")
def server():
    loaded = load_model("tiny:2", device="cpu", dtype="float32")
    seen: list[dict] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(LocalChatModel(loaded.model, loaded.tokenizer), seen))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()


def test_openai_backend_talks_to_a_real_server(server, monkeypatch):
    url, seen = server
    monkeypatch.setenv("TEST_KEY", "sk-local")
    chat = OpenAIChatModel(url, "tiny", api_key_env="TEST_KEY")
    replies = chat.complete(["Name a city.", "Name a river."], Sampling(1.0, max_new_tokens=6, n=3), seed=4)
    assert [len(r) for r in replies] == [3, 3] and all(isinstance(t, str) for r in replies for t in r)
    assert len(seen) == 4  # 2 prompts x (2 choices + a top-up request for the third)
    assert seen[0]["path"] == "/v1/chat/completions" and seen[0]["auth"] == "Bearer sk-local"
    assert seen[0]["messages"] == [{"role": "user", "content": "Name a city."}] and seen[0]["max_tokens"] == 6
    # the tiny model's replies fail the filters, so each item falls back to the template backend, and says so
    backend = ChatBackend(chat)
    made = collect([backend, TemplateBackend([PARIS])], "questions", [PARIS], 3, 0,
                   lambda a, t: "France" in t and "Paris" not in t)  # fmt: skip
    assert len(made[0]) == 3 and {b for _, b in made[0]} <= {"openai", "template"}


def test_openai_backend_reports_a_dead_endpoint_clearly(server):
    url, _ = server
    with pytest.raises(ObliviateError, match=r"chat endpoint .* failed"):
        OpenAIChatModel(url.replace("/v1", "/nowhere"), "tiny").complete(["hi"], Sampling(), seed=0)
    with pytest.raises(ObliviateError, match=r"chat endpoint .* failed"):
        OpenAIChatModel("http://127.0.0.1:9", "tiny", timeout=2).complete(["hi"], Sampling(), seed=0)
