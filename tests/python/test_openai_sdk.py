"""The official `openai` Python package against `medgate serve --demo`: chat, streaming (usage
metered once, the client sees only what it asked for), embeddings, models, and errors."""

import time

import openai
import pytest
import requests


@pytest.fixture(scope="module")
def client(demo):
    return openai.OpenAI(base_url=demo["proxy_url"] + "/v1", api_key=demo["api_key"], max_retries=0, timeout=30)


def history_entry(demo, request_id):
    """Waits for the usage event of one request to reach the control plane."""
    headers = {"Authorization": "Bearer " + demo["admin_token"]}
    deadline = time.time() + 10
    while time.time() < deadline:
        page = requests.get(demo["api_url"] + "/api/inference/history?page_size=200", headers=headers, timeout=10).json()
        matches = [e for e in page["items"] if e["request_id"] == request_id]
        if matches:
            return matches
        time.sleep(0.2)
    return []


def test_chat_completion_and_metering(client, demo):
    raw = client.chat.completions.with_raw_response.create(
        model=demo["model"], messages=[{"role": "user", "content": "hello from the sdk"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from the sdk"
    assert completion.usage.total_tokens > 0
    entries = history_entry(demo, raw.headers["x-request-id"])
    assert len(entries) == 1, "exactly one usage event"
    assert entries[0]["input_tokens"] == completion.usage.prompt_tokens
    assert entries[0]["output_tokens"] == completion.usage.completion_tokens


def test_streaming_hides_usage_unless_asked(client, demo):
    raw = client.chat.completions.with_raw_response.create(
        model=demo["model"], messages=[{"role": "user", "content": "stream these five words please"}], stream=True
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stream these five words please"
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    entries = history_entry(demo, raw.headers["x-request-id"])
    assert len(entries) == 1 and entries[0]["streamed"] is True
    assert entries[0]["output_tokens"] > 0, "the stream was metered from the hidden usage chunk"

    chunks = list(
        client.chat.completions.create(
            model=demo["model"],
            messages=[{"role": "user", "content": "with usage"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0].usage.total_tokens > 0


def test_embeddings_and_models(client, demo):
    result = client.embeddings.create(model=demo["model"], input=["blood pressure", "heart rate"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    ids = [m.id for m in client.models.list()]
    assert demo["model"] in ids


def test_errors_map_to_sdk_exceptions(client, demo):
    bad = openai.OpenAI(base_url=demo["proxy_url"] + "/v1", api_key="mg_000000000000_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=demo["model"], messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=demo["model"], messages="not a list")
