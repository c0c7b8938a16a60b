"""The fake upstream speaks each provider's wire format well enough for the official SDKs."""

import asyncio
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anthropic
import httpx
import openai
import pytest
from fakeupstream import Echo, FakeUpstream, Fault, Hang, Reply

USER = [{"role": "user", "content": "hi"}]
BASH = {"command": "echo hi > marker.txt", "description": "Write a marker file"}
CHAT_TOOLS = [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def chat_text(deltas):
    """Concatenate the content of streamed chat deltas."""
    return "".join(delta.content or "" for delta in deltas)


@pytest.fixture
def up():
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def oai(up):
    return openai.OpenAI(base_url=up.url + "/v1", api_key="sk-test", max_retries=0, timeout=5)


@pytest.fixture
def ant(up):
    return anthropic.Anthropic(base_url=up.url, api_key="sk-ant-test", max_retries=0, timeout=5)


def test_chat_default_reply_names_model(oai):
    completion = oai.chat.completions.create(model="gpt-x", messages=USER)
    assert completion.choices[0].message.content == "fake reply from gpt-x via chat"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-x"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_assembles_chunks_and_usage(up, oai):
    up.script(Reply(text="hello streaming world", chunks=4, chunk_delay=0.01))
    stream = oai.chat.completions.create(
        model="gpt-x", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 4
    assert "".join(pieces) == "hello streaming world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_chat_tool_call(up, oai):
    up.script(Reply(tool="Bash", input=BASH, tool_id="call_1"))
    message = oai.chat.completions.create(model="gpt-x", messages=USER, tools=CHAT_TOOLS).choices[0].message
    assert message.content is None
    assert message.tool_calls[0].id == "call_1"
    assert message.tool_calls[0].function.name == "Bash"
    assert json.loads(message.tool_calls[0].function.arguments) == BASH


def test_chat_tool_call_streamed(up, oai):
    up.script(Reply(tool="Bash", input=BASH, chunks=5))
    with oai.chat.completions.stream(model="gpt-x", messages=USER, tools=CHAT_TOOLS) as stream:
        completion = stream.get_final_completion()
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_") and call.function.name == "Bash"
    assert json.loads(call.function.arguments) == BASH


def test_chat_reasoning_content(up, oai):
    up.script(Reply(text="answer", thinking="let me think"))
    up.script(Reply(text="answer", thinking="let me think", chunks=3))
    message = oai.chat.completions.create(model="glm", messages=USER).choices[0].message
    assert message.reasoning_content == "let me think"
    stream = oai.chat.completions.create(model="glm", messages=USER, stream=True)
    deltas = [chunk.choices[0].delta for chunk in stream]
    assert "".join(getattr(delta, "reasoning_content", None) or "" for delta in deltas) == "let me think"
    assert chat_text(deltas) == "answer"


def test_chat_under_path_prefix(up):
    client = openai.OpenAI(base_url=up.url + "/zai/api/paas/v4", api_key="x", max_retries=0)
    completion = client.chat.completions.create(model="glm-4.6", messages=USER)
    assert completion.choices[0].message.content == "fake reply from glm-4.6 via chat"
    assert up.requests[-1].path == "/zai/api/paas/v4/chat/completions"


def test_responses(up, oai):
    up.script(Reply(text="hi there", thinking="pondering"))
    response = oai.responses.create(model="gpt-5", input="hi")
    assert response.output_text == "hi there"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].summary[0].text == "pondering"
    assert response.usage.output_tokens_details.reasoning_tokens > 0


def test_responses_tool_call(up, oai):
    up.script(Reply(tool="Bash", input=BASH, tool_id="call_7"))
    call = oai.responses.create(model="gpt-5", input="hi").output[0]
    assert (call.type, call.call_id, call.name) == ("function_call", "call_7", "Bash")
    assert json.loads(call.arguments) == BASH


def test_responses_streamed(up, oai):
    up.script(Reply(text="streamed answer", chunks=3))
    events = list(oai.responses.create(model="gpt-5", input="hi", stream=True))
    types = [event.type for event in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 3 and "".join(deltas) == "streamed answer"
    assert events[-1].response.output_text == "streamed answer"


def test_responses_stream_helper_accumulates_tool_call(up, oai):
    up.script(Reply(text="calling", thinking="hmm", tool="Bash", input=BASH, chunks=4))
    with oai.responses.stream(model="gpt-5", input="hi") as stream:
        response = stream.get_final_response()
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert json.loads(response.output[2].arguments) == BASH


def test_messages_with_thinking_and_tool(up, ant):
    up.script(Reply(text="sure", thinking="deliberating", signature="sig-1", tool="Bash", input=BASH))
    message = ant.messages.create(model="claude-x", max_tokens=100, messages=USER)
    thinking, text, tool = message.content
    assert (thinking.type, thinking.thinking, thinking.signature) == ("thinking", "deliberating", "sig-1")
    assert text.text == "sure"
    assert (tool.type, tool.name, tool.input) == ("tool_use", "Bash", BASH)
    assert tool.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_messages_streamed(up, ant):
    up.script(Reply(text="streamed text", thinking="deep thought", tool="Bash", input=BASH, chunks=3))
    with ant.messages.stream(model="claude-x", max_tokens=100, messages=USER) as stream:
        events = list(stream)
        message = stream.get_final_message()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("text") == 3
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "deep thought"
    assert message.content[0].signature == "fake-signature"
    assert message.content[1].text == "streamed text"
    assert message.content[2].input == BASH
    assert message.stop_reason == "tool_use" and message.usage.output_tokens > 1


def test_messages_default_reply_streamed(ant):
    with ant.messages.stream(model="claude-y", max_tokens=10, messages=USER) as stream:
        assert stream.get_final_text() == "fake reply from claude-y via messages"


def test_count_tokens(ant):
    count = ant.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hello " * 100}])
    assert 100 <= count.input_tokens <= 300


def test_models_list(up, oai, ant):
    up.models = ["alpha", "beta"]
    assert [model.id for model in oai.models.list()] == ["alpha", "beta"]
    assert [model.id for model in ant.models.list()] == ["alpha", "beta"]


def test_rate_limit_fault_by_model_and_count(up, oai):
    up.script(Fault(429, headers={"Retry-After": "7"}), times=2, model="gpt-x")
    assert oai.chat.completions.create(model="other", messages=USER).choices[0].message.content
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as raised:
            oai.chat.completions.create(model="gpt-x", messages=USER)
        assert raised.value.response.headers["retry-after"] == "7"
        assert raised.value.body["type"] == "rate_limit_error"
    assert oai.chat.completions.create(model="gpt-x", messages=USER).choices[0].message.content


def test_faults_use_the_apis_error_format(up, ant, oai):
    up.script(Fault(401, "bad key"), api="messages")
    up.script(Fault(404, "model nope not found"), api="chat")
    with pytest.raises(anthropic.AuthenticationError) as raised:
        ant.messages.create(model="claude-x", max_tokens=10, messages=USER)
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "bad key"},
    }
    with pytest.raises(openai.NotFoundError, match="model nope not found"):
        oai.chat.completions.create(model="nope", messages=USER)


def test_raw_fault_body_and_unknown_route(up, oai):
    up.script(Fault(500, body="upstream exploded", headers={"Content-Type": "text/plain"}))
    with pytest.raises(openai.InternalServerError) as raised:
        oai.chat.completions.create(model="gpt-x", messages=USER)
    assert raised.value.response.text == "upstream exploded"
    assert raised.value.response.headers["content-type"] == "text/plain"
    assert httpx.post(up.url + "/v1/embeddings", json={}).status_code == 404


def connection_failures() -> tuple[type[BaseException], ...]:
    """What an SDK raises when the connection breaks mid-response, in any of its versions: its own
    APIConnectionError, or the transport error of whichever HTTP client it uses (httpx, or httpx2 in
    anthropic 2.x). The behaviour asserted is "the client saw the connection fail", not one class name."""
    found: list[type[BaseException]] = [ConnectionError, httpx.TransportError,
                                        openai.APIConnectionError, anthropic.APIConnectionError]
    for name in ("httpx2", "httpcore", "httpcore2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found += [getattr(module, kind) for kind in ("TransportError", "NetworkError", "RemoteProtocolError")
                  if isinstance(getattr(module, kind, None), type)]
    return tuple(found)


def test_reset_mid_stream_raises(up, oai, ant):
    up.script(Reply(text="partial answer", chunks=4, mid_stream="reset"), times=2)
    stream = oai.chat.completions.create(model="gpt-x", messages=USER, stream=True)
    with pytest.raises(connection_failures()):
        list(stream)
    with (
        pytest.raises(connection_failures()),
        ant.messages.stream(model="claude-x", max_tokens=10, messages=USER) as stream,
    ):
        stream.get_final_message()


def test_malformed_stream_data_raises(up, oai, ant):
    up.script(Reply(text="abcdef", chunks=3, mid_stream="malformed"), times=3)
    with pytest.raises(json.JSONDecodeError):
        list(oai.chat.completions.create(model="gpt-x", messages=USER, stream=True))
    with pytest.raises(json.JSONDecodeError):
        list(oai.responses.create(model="gpt-5", input="hi", stream=True))
    with pytest.raises(json.JSONDecodeError):
        list(ant.messages.create(model="claude-x", max_tokens=10, messages=USER, stream=True))


def test_stall_then_resume_and_hang_until_timeout(up, oai):
    up.script(Reply(text="slow", chunks=2, mid_stream="stall", stall=0.3))
    started = time.monotonic()
    stream = oai.chat.completions.create(model="m", messages=USER, stream=True)
    assert chat_text(chunk.choices[0].delta for chunk in stream) == "slow"
    assert time.monotonic() - started >= 0.3
    up.script(Hang())
    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(model="m", messages=USER, timeout=0.3)


def test_requests_log_records_headers_and_body(up, ant):
    ant.beta.messages.create(
        model="claude-x",
        max_tokens=10,
        messages=USER,
        betas=["interleaved-thinking-2025-05-14"],
        extra_query={"beta": "true"},
    )
    received = up.requests[-1]
    assert (received.method, received.path, received.api) == ("POST", "/v1/messages", "messages")
    assert received.query == {"beta": "true"}
    credentials = (received.headers.get("x-api-key"), received.headers.get("authorization"))
    assert credentials in [("sk-ant-test", None), (None, "Bearer sk-ant-test")]  # SDK 2.x sends Bearer
    assert received.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert received.json["messages"] == USER and json.loads(received.body) == received.json
    up.reset()
    assert up.requests == []


def test_tool_then_text_round_trip(up, ant):
    up.default = Reply.tool_then_text(tool="Bash", input=BASH, final="done: {result}")
    first = ant.messages.create(model="claude-x", max_tokens=10, messages=USER, tools=ANTHROPIC_TOOLS)
    tool_use = first.content[-1]
    assert (tool_use.name, tool_use.input) == ("Bash", BASH)
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": [{"type": "text", "text": "hi"}]}
    messages = [*USER, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    second = ant.messages.create(model="claude-x", max_tokens=10, messages=messages, tools=ANTHROPIC_TOOLS)
    assert second.content[0].text == "done: hi"
    no_tools = ant.messages.create(model="claude-haiku", max_tokens=10, messages=USER)
    assert no_tools.content[0].text == "fake reply from claude-haiku via messages"


def test_callable_script_sees_the_request(up, oai):
    up.script(lambda received: Reply(text=f"{len(received.json['messages'])} messages"))
    completion = oai.chat.completions.create(model="m", messages=USER * 3)
    assert completion.choices[0].message.content == "3 messages"


def test_keep_alive_across_plain_and_streamed_responses(up):
    connection = http.client.HTTPConnection("127.0.0.1", up.port, timeout=5)
    body = json.dumps({"model": "m", "messages": USER, "stream": True})
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    first = connection.getresponse()
    assert first.getheader("Transfer-Encoding") == "chunked" and first.read().endswith(b"data: [DONE]\n\n")
    socket_used = connection.sock
    connection.request("GET", "/v1/models")
    second = connection.getresponse()
    assert int(second.getheader("Content-Length")) == len(second.read())
    assert connection.sock is socket_used


def test_aiohttp_streams_chunks_as_they_come(up):
    up.default = Echo(chunks=5, chunk_delay=0.05)

    async def read_arrival_times():
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "messages": USER, "stream": True}
            async with session.post(up.url + "/v1/messages", json=body) as response:
                return [time.monotonic() async for line in response.content if line.startswith(b"data: ")]

    arrivals = asyncio.run(read_arrival_times())
    assert arrivals[-1] - arrivals[0] >= 0.15


def test_cli_serves_as_a_separate_process():
    script = Path(__file__).with_name("fakeupstream.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--chunks", "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().split()[-1]
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=5)
        chunks = list(client.chat.completions.create(model="bench", messages=USER, stream=True))
        assert chat_text(chunk.choices[0].delta for chunk in chunks) == "fake reply from bench via chat"
        assert len(chunks) == 5
    finally:
        process.terminate()
        process.wait(5)
