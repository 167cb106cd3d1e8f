#!/usr/bin/env python3
"""Checks a running MemServe server with the official `openai` Python client.

Usage: python3 scripts/openai_client_test.py http://127.0.0.1:8000/v1 [--model NAME]

Starts nothing itself: point it at a server (`memserve serve`). Runs models.list,
completions and chat completions (streamed and not, with usage and cached prompt tokens on
a repeated prompt) and error cases, prints `N passed, N failed`, and exits non-zero on any
failure. Needs `pip install openai`.
"""

import argparse
import sys
import traceback

import openai
from openai import OpenAI

RESULTS = {"passed": 0, "failed": 0}


def check(name):
    """Runs the decorated function as one named check, counting its outcome."""

    def run(fn):
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported and counted
            RESULTS["failed"] += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            RESULTS["passed"] += 1
            print(f"ok   {name}")
        return fn

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", help="model name (default: the first one the server lists)")
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key="unused", max_retries=0, timeout=120)
    model = args.model or client.models.list().data[0].id
    # Long enough to fill whole KV blocks, so the repeat can reuse them.
    long_text = "The quick brown fox jumps over the lazy dog. " * 4

    @check("models.list")
    def _():
        ids = [m.id for m in client.models.list().data]
        assert model in ids, ids

    @check("completions.create")
    def _():
        r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0)
        assert r.id.startswith("cmpl-"), r.id
        assert r.object == "text_completion"
        assert len(r.choices) == 1 and isinstance(r.choices[0].text, str)
        assert r.choices[0].finish_reason in ("stop", "length"), r.choices[0].finish_reason
        assert r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    @check("completions.create(stream=True)")
    def _():
        text, finish, usage = "", None, None
        stream = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0,
                                           stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.text
                finish = choice.finish_reason or finish
        assert finish in ("stop", "length"), finish
        assert usage is not None and usage.completion_tokens <= 8
        whole = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0)
        assert text == whole.choices[0].text, (text, whole.choices[0].text)

    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": long_text}]

    @check("chat.completions.create")
    def _():
        r = client.chat.completions.create(model=model, messages=messages, max_tokens=6)
        assert r.id.startswith("chatcmpl-"), r.id
        assert r.object == "chat.completion"
        assert r.choices[0].message.role == "assistant"
        assert isinstance(r.choices[0].message.content, str)
        assert r.choices[0].finish_reason in ("stop", "length")
        assert r.usage.prompt_tokens_details is not None

    @check("chat.completions.create: repeated prompt reports cached_tokens")
    def _():
        client.chat.completions.create(model=model, messages=messages, max_tokens=2)
        r = client.chat.completions.create(model=model, messages=messages, max_tokens=2)
        cached = r.usage.prompt_tokens_details.cached_tokens
        assert 0 < cached < r.usage.prompt_tokens, (cached, r.usage)

    @check("chat.completions.create(stream=True) with usage")
    def _():
        stream = client.chat.completions.create(model=model, messages=messages, max_tokens=6, stream=True,
                                                stream_options={"include_usage": True})
        roles, content, finish, usage = [], "", None, None
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.role:
                    roles.append(choice.delta.role)
                content += choice.delta.content or ""
                finish = choice.finish_reason or finish
        assert roles == ["assistant"], roles
        assert finish in ("stop", "length"), finish
        assert usage is not None and usage.completion_tokens <= 6
        assert usage.prompt_tokens_details.cached_tokens > 0, usage

    @check("bad request raises BadRequestError")
    def _():
        try:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], temperature=5)
        except openai.BadRequestError as e:
            assert e.status_code == 400
            assert e.body.get("param") == "temperature", e.body
        else:
            raise AssertionError("no error for temperature=5")

    @check("unknown model raises NotFoundError")
    def _():
        try:
            client.completions.create(model="no-such-model", prompt="hi", max_tokens=1)
        except openai.NotFoundError as e:
            assert e.code == "model_not_found", e.code
        else:
            raise AssertionError("no error for an unknown model")

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
