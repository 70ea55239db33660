"""Shipped weights (physlm/store/pretrained.py): a finished train step exported as a pretrained folder, installed
in another root as the output of the same train step (no training), refused for another recipe or altered
files; and the folder shipped with physlm, whose preset installs a model that solves problems."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch

from physlm import machine
from physlm.config import ConfigError
from physlm.model import tensorboard
from physlm.presets import PRESETS, resolve
from physlm.sql import queries
from physlm.stages import evaluate, train
from physlm.stages import generate as datasets
from physlm.store import checkpoint, pretrained, registry, steps

TINY = [
    "data.train_shards=1",
    "data.problems_per_shard=30",
    "data.test_problems=4",
    "data.seen_problems=0",
    "data.test_seen=false",
    "probe.test_sets=test_id",
    "data.processes=0",
    "train.steps=4",
    "train.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=2",
]


def _train_data(p):
    datasets.run(datasets.dataset_step(p, "train"))


def test_export_then_install_elsewhere_is_the_same_step(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "a"))
    p = resolve("tiny", TINY)
    _train_data(p)
    trained = train.run(train.train_step(p))
    card = pretrained.export(p, trained, str(tmp_path / "shipped"), machine="unused: the step records its own")
    assert card["train_step"] == train.train_step(p).id and card["trained"]["machine"] == machine.describe("cpu")
    assert [c[0] for c in card["loss_curve"]] == [2, 4] and card["checkpoint"]["step"] == 4
    assert set(card["files"]) >= {"config.json", "model.safetensors", "tokenizer.json", "physlm_markers.json"}
    # the folder is a model folder evaluate-model loads as a physlm model (its tokenizer and framing)
    assert evaluate.is_physlm_model(str(tmp_path / "shipped"))

    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "b"))
    monkeypatch.chdir(tmp_path)
    q = resolve("tiny", TINY + ["train.pretrained=./shipped"])
    assert q.train.pretrained == str(tmp_path / "shipped")  # a folder is kept as an absolute path
    _train_data(q)
    step = train.train_step(q)
    assert step.id == train.train_step(p).id  # the same step: `train.pretrained` is not hashed
    # a killed training run of the same step left a checkpoint in the staging folder: the install replaces it
    staging = steps.parts_path(step)
    os.makedirs(staging)
    for name in ("model_000002.safetensors", "state_000002.pt", "meta_000002.json"):
        shutil.copy(os.path.join(trained, name), staging)
    installed = train.run(step)
    assert step.done() and checkpoint.steps(installed) == [4]
    assert not os.path.exists(os.path.join(installed, "state_000004.pt"))  # nothing to resume: it is final
    a, b = checkpoint.load_model(trained), checkpoint.load_model(installed)
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    rows = registry.list_checkpoints().to_pylist()
    assert [(r["step"], r["final"], r["train_hash"]) for r in rows] == [(4, True, step.hash)]
    info = steps.read_info(installed)["train_summary"]
    assert info["pretrained"]["trained"] == card["trained"] and info["loss"] == card["checkpoint"]["loss"]
    # the report's training curve: the card's points before the installed checkpoint, then the checkpoint itself
    rows = queries.run_queries(("training_curves",))["training_curves"].to_pylist()
    assert [(r["step"], r["tokens_seen"], r["loss"]) for r in rows if r["train_hash"] == step.hash] == [
        tuple(c) for c in card["loss_curve"]
    ]
    events = tensorboard.read(open(os.path.join(installed, tensorboard.FILENAME), "rb").read())
    assert [(s, v["train/loss"]) for s, v in events] == [(c[0], pytest.approx(c[2])) for c in card["loss_curve"]]

    # the other way round: a killed install left the shipped weights in the staging folder; training the step
    # (no train.pretrained) starts from step 0 instead of refusing to resume from them
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "c"))
    _train_data(p)
    step = train.train_step(p)
    staging = steps.parts_path(step)
    os.makedirs(staging)
    train.tokenizer_for(p.tokenizer).save(staging)
    pretrained.install(str(tmp_path / "shipped"), step, staging)
    assert checkpoint.steps(staging) == [4]
    retrained = train.run(step)
    assert checkpoint.steps(retrained) == [2, 4] and steps.read_info(retrained)["train_summary"]["resumed_from"] is None
    assert all(os.path.exists(os.path.join(retrained, f"state_00000{s}.pt")) for s in (2, 4))


def test_install_refuses_another_recipe_and_altered_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "a"))
    p = resolve("tiny", TINY)
    _train_data(p)
    pretrained.export(p, train.run(train.train_step(p)), str(tmp_path / "shipped"))

    other = resolve("tiny", TINY + ["train.steps=6", f"train.pretrained={tmp_path / 'shipped'}"])
    with pytest.raises(ConfigError, match=r"train.pretrained: .* holds the weights of train-\w+ .*another recipe"):
        train.run(train.train_step(other))
    assert not train.train_step(other).done()

    altered = tmp_path / "altered"
    shutil.copytree(tmp_path / "shipped", altered)
    data = bytearray((altered / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (altered / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "b"))
    q = resolve("tiny", TINY + [f"train.pretrained={altered}"])
    with pytest.raises(ConfigError, match="model.safetensors does not match its card"):
        train.check_preset(q)  # what the CLI calls before any work
    assert not os.path.exists(tmp_path / "b")
    _train_data(q)
    with pytest.raises(ConfigError, match="model.safetensors does not match its card"):
        train.run(train.train_step(q))
    assert not train.train_step(q).done()
    with pytest.raises(ConfigError, match=r"train.pretrained: 'nowhere' is neither a shipped model"):
        pretrained.locate("nowhere")

    # a consistent card over another vocabulary (two tokens' ids swapped): the text would be framed otherwise
    other = tmp_path / "other-vocab"
    shutil.copytree(tmp_path / "shipped", other)
    tj = json.loads((other / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    a, b = list(vocab)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tj))
    card = json.loads((other / "card.json").read_text())
    card["files"]["tokenizer.json"]["sha256"] = hashlib.sha256((other / "tokenizer.json").read_bytes()).hexdigest()
    (other / "card.json").write_text(json.dumps(card))
    r = resolve("tiny", TINY + [f"train.pretrained={other}"])
    train.check_preset(r)  # the card is consistent
    with pytest.raises(ConfigError, match="another vocabulary than this physlm's tokenizer"):
        train.run(train.train_step(r))


def test_export_never_replaces_another_folder_and_bad_cards_are_left_out(tmp_path, monkeypatch):
    from physlm import presets

    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "a"))
    p = resolve("tiny", TINY)
    _train_data(p)
    trained = train.run(train.train_step(p))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a pretrained folder"):
        pretrained.export(p, trained, str(tmp_path / "mine"))
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    shelf = tmp_path / "shelf"
    pretrained.export(p, trained, str(shelf / "good"))
    pretrained.export(p, trained, str(shelf / "good"))  # a pretrained folder is replaced whole
    shutil.copytree(shelf / "good", shelf / ".export-half")  # a half-written export is never a shipped model
    (shelf / "bad").mkdir()
    (shelf / "bad" / "card.json").write_text("{not json")
    monkeypatch.setattr(pretrained, "SHIPPED", str(shelf))
    assert pretrained.names() == ["bad", "good"]
    base = {k: v for k, v in PRESETS.items() if not k.endswith("-pretrained")}
    got = presets._with_shipped(base)
    assert set(got) - set(base) == {"good-pretrained"}
    assert got["good-pretrained"].train.pretrained == "good" and train.train_step(got["good-pretrained"]).id == (
        train.train_step(p).id
    )


def test_export_model_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from physlm.cli import app

    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "a"))
    sets = [x for s in TINY for x in ("--set", s)]
    res = CliRunner().invoke(app, ["export-model", str(tmp_path / "out"), *sets])
    assert res.exit_code == 2 and "is not done under" in res.output and "physlm train --preset tiny" in res.output
    p = resolve("tiny", TINY)
    _train_data(p)
    train.run(train.train_step(p))
    res = CliRunner().invoke(app, ["export-model", str(tmp_path / "out"), *sets])
    assert res.exit_code == 0, res.output
    assert f"{train.train_step(p).id} (GPT2-4-2-hd32, step 4, loss" in res.output and "no evaluation" in res.output
    assert json.loads((tmp_path / "out" / "card.json").read_text())["preset"]["name"] == "tiny"


@pytest.mark.skipif(not pretrained.names(), reason="no shipped pretrained folder")
def test_shipped_models_install_as_their_presets_and_solve_problems(tmp_path):
    """Every shipped folder: its `<name>-pretrained` preset's train step is the card's (so the install check
    passes), its files match the card, and the installed model solves fresh problems of its training templates."""
    from physlm.igsm import record
    from physlm.igsm.generate import generate

    for name in pretrained.names():
        p = PRESETS[f"{name}-pretrained"]
        step = train.train_step(p)
        card = pretrained.read_card(pretrained.locate(name))
        assert step.id == card["train_step"] and p.train.pretrained == name
        train.tokenizer_for(p.tokenizer).save(str(tmp_path / name))  # as the stage does: the same bytes as shipped
        summary = pretrained.install(name, step, str(tmp_path / name))
        assert checkpoint.steps(str(tmp_path / name)) == [card["checkpoint"]["step"]] == [summary["step"]]

        model, codec = evaluate.load_physlm(pretrained.locate(name))
        gen = p.data.datasets()["test_seen"][0]
        fresh = (generate(gen, 900_000 + i) for i in range(10_000))
        op1 = [record.row(x, str(i), "op1") for i, x in enumerate(x for x in fresh if x.op == 1)][:24]
        rows = evaluate.evaluate_sets(model, codec, {"op1": op1}, "shipped")
        solved = sum(r["correct"] for r in rows)
        assert solved >= len(op1) // 2, f"{name}: {solved} of {len(op1)} op-1 problems solved"
