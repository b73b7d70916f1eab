"""Chat templates: labkit renders them as transformers does, keeps them through save/load, and refuses bad input."""

from __future__ import annotations

import json

import pytest

from labkit.data import load_tokenizer, train_tokenizer
from labkit.errors import InvalidInputError

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# whitespace control, loop controls, tojson, raise_exception and the special-token variables
FANCY = """{{ bos_token }}
{% for m in messages %}
  {% if m['role'] not in ['user', 'assistant', 'system'] %}{{ raise_exception('bad role ' + m['role']) }}{% endif %}
  {% if m['content'] == 'skip' %}{% continue %}{% endif %}
  [{{ m['role'] | upper }}] {{ m['content'] | tojson }}{{ eos_token }}
{% endfor %}
{% if add_generation_prompt %}[ASSISTANT]{% endif %}"""
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": 'Say "hi" in 東京 style\nplease'},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "skip"},
    ],
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["hello world, the cat sat on the mat", "What is the capital of France? Paris."] * 10
    tok = train_tokenizer(
        texts, kind="bpe", vocab_size=300, special_tokens={"bos": "<|im_start|>", "eos": "<|im_end|>"}
    )
    tok.chat_template = CHATML
    return tok


@pytest.mark.parametrize("template", [CHATML, FANCY], ids=["chatml", "fancy"])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_rendering_matches_transformers(tokenizer, template, add_generation_prompt):
    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend, bos_token="<|im_start|>", eos_token="<|im_end|>", chat_template=template
    )
    tokenizer.chat_template = template
    try:
        for messages in CONVERSATIONS:
            ours = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
            theirs = hf.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
            assert ours == theirs
    finally:
        tokenizer.chat_template = CHATML


def test_special_markers_encode_as_single_ids(tokenizer):
    ids = tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True, tokenize=True)
    assert ids.count(tokenizer.bos_id) == 3 and ids.count(tokenizer.eos_id) == 2
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True)


def test_template_survives_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert back.chat_template == CHATML and back.special_tokens == tokenizer.special_tokens


def test_transformers_folder_gives_template_and_roles(tokenizer, tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    tokenizer.backend.save(str(folder / "tokenizer.json"))  # no labkit sidecar: a plain transformers folder
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "chat_template": CHATML}))
    tok = load_tokenizer(folder)
    assert tok.chat_template == CHATML and tok.eos_id == tokenizer.eos_id
    (folder / "chat_template.jinja").write_text(FANCY)  # newer transformers keep it in its own file, which wins
    assert load_tokenizer(folder).chat_template == FANCY


def test_bad_input_raises_one_line(tokenizer):
    with pytest.raises(InvalidInputError, match="list of"):
        tokenizer.apply_chat_template("hello")
    with pytest.raises(InvalidInputError, match=r"messages\[1\]"):
        tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user"}])
    tokenizer.chat_template = FANCY
    try:
        with pytest.raises(InvalidInputError, match="bad role robot"):
            tokenizer.apply_chat_template([{"role": "robot", "content": "beep"}])
    finally:
        tokenizer.chat_template = CHATML
    plain = train_tokenizer(["abc"] * 3, kind="char")
    with pytest.raises(InvalidInputError, match="no chat template"):
        plain.apply_chat_template(CONVERSATIONS[0])
