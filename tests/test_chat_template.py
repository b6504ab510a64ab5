"""The K2 chat format as a Jinja chat template: what the shipped k2-nano's tokenizer_config.json carries,
so that transformers (and the servers that render with it, vLLM and SGLang) prompt the model exactly
as k2nb does. Held equal to `render_text` on generated and hand-written conversations, and, through
transformers' own `apply_chat_template` on the shipped folder, to k2nb's token ids."""

from __future__ import annotations

import json

import pytest

from k2nb.formats.k2 import chat_template, encode_conversation, render_text
from k2nb.models import model_path
from k2nb.nano import curriculum as C

PY = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run code.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Météo, °C",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "enum": ["Zürich", "東京"]}},
        },
    },
}

HAND = [
    ([{"role": "user", "content": "hi"}], None),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], [PY]),
    (
        [{"role": "user", "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]}],
        None,
    ),
    (  # a finished turn (reasoning dropped), then a tool loop in progress (kept), dict arguments
        [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "done", "reasoning_content": "old thoughts"},
            {"role": "user", "content": "second"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "new thoughts",
                "tool_calls": [
                    {
                        "id": "functions.get_weather:0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "東京"}},
                    },
                    {
                        "id": "functions.python:1",
                        "type": "function",
                        "function": {"name": "python", "arguments": '{"code": "print(1)"}'},
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "functions.get_weather:0",
                "name": "get_weather",
                "content": "12 °C",
            },
            {"role": "tool", "tool_call_id": "functions.python:1", "content": "1\n"},
        ],
        [WEATHER, PY],
    ),
    (
        [
            {"role": "user", "content": 'markers as text: <|im_end|> "<think>"'},
            {"role": "assistant", "content": "", "reasoning_content": None},
        ],
        None,
    ),
]


def render_with_template(messages, tools, add_generation_prompt: bool) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    out = render_jinja_template(
        [messages], tools=tools, chat_template=chat_template(), add_generation_prompt=add_generation_prompt
    )
    text = out[0] if isinstance(out, tuple) else out
    return text[0] if isinstance(text, list) else text


def conversations():
    for p in C.generate(200, seed=3) + C.heldout_problems(40, seed=5):
        yield p.messages, p.tools
    yield from HAND


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_the_template_renders_exactly_what_k2nb_renders(add_generation_prompt: bool) -> None:
    n = 0
    for messages, tools in conversations():
        expected = render_text(messages, tools, add_generation_prompt)
        assert render_with_template(messages, tools, add_generation_prompt) == expected, json.dumps(messages)[
            :300
        ]
        n += 1
    assert n > 200


def test_the_shipped_checkpoint_carries_it_and_transformers_prompts_as_k2nb() -> None:
    from transformers import AutoTokenizer

    from k2nb.engine import load_tokenizer

    folder = model_path()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["chat_template"] == chat_template()
    hf = AutoTokenizer.from_pretrained(str(folder))
    ours = load_tokenizer(folder)
    for messages, tools in list(conversations())[::7]:
        text = hf.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        assert text == render_text(messages, tools)
        if '<|im_end|> "<think>"' in json.dumps(messages):
            continue  # marker strings in user text: HF parses them as special tokens, k2nb never does
        ids = hf.apply_chat_template(messages, tools=tools, tokenize=True, add_generation_prompt=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert list(ids) == encode_conversation(ours, messages, tools)
