"""The model card's texts for people: intended use and known limitations, `medseg models MODEL`, napari tooltips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from medseg_cli.main import main
from predictor_helpers import trained_state, write_model_folder

from medseg.errors import InputError
from medseg.inference.card_text import card_markdown, card_tooltip, folder_tooltip
from medseg.inference.ensemble import add_member
from medseg.inference.model_card import read_card
from medseg.inference.model_folder import load_model_folder

ROOT = Path(__file__).resolve().parents[2]
USE = "Tiny spheres, for tests only."
LIMITS = ["Fails on anything that is not a sphere (Dice 0.1 on cubes).", "Never seen a real scan."]


def _with_texts(folder: Path, **extra: object) -> Path:
    card = json.loads((folder / "model_card.json").read_text())
    card.update({"intended_use": USE, "limitations": LIMITS, **extra})
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def test_the_card_reads_writes_and_checks_its_texts_for_people(tmp_path: Path) -> None:
    folder = _with_texts(write_model_folder(tmp_path / "m", trained_state(steps=1)))
    card = read_card(folder / "model_card.json")
    assert card.intended_use == USE and card.limitations == tuple(LIMITS)
    assert card.to_dict()["intended_use"] == USE and card.to_dict()["limitations"] == LIMITS
    add_member(folder, write_model_folder(tmp_path / "member", trained_state(steps=2)), 0.5)  # rewrites the card
    assert read_card(folder / "model_card.json").limitations == tuple(LIMITS)
    for bad, message in (({"limitations": "one string"}, "'limitations' must be a list of non-empty strings"),
                         ({"limitations": ["ok", " "]}, "'limitations' must be a list of non-empty strings"),
                         ({"intended_use": ["a list"]}, "'intended_use' must be a string"),
                         ({"limitation": ["misspelt"]}, r"unknown keys \['limitation'\]")):
        _with_texts(folder, **bad)
        with pytest.raises(InputError, match=message):
            read_card(folder / "model_card.json")
        assert message.split("'")[1] in folder_tooltip(folder) or "unknown keys" in folder_tooltip(folder)


def test_markdown_and_tooltip_give_use_limits_networks_training_and_results(tmp_path: Path) -> None:
    folder = _with_texts(write_model_folder(tmp_path / "m", trained_state(steps=1)))
    add_member(folder, write_model_folder(tmp_path / "member", trained_state(steps=2)), 0.25)
    text = card_markdown(load_model_folder(folder))
    assert f"## Intended use\n\n{USE}\n" in text
    assert "## Known limitations\n\n" + "\n".join(f"- {line}" for line in LIMITS) in text
    assert "weight 0.75 of the mean" in text and "- members/member: unet" in text and "mean member, weight 0.25" in text
    tip = card_tooltip(read_card(folder / "model_card.json"))
    assert USE in tip and all(line in tip for line in LIMITS)
    bare = write_model_folder(tmp_path / "bare", trained_state(steps=1))
    assert "## Known limitations\n\nnot stated in the card" in card_markdown(load_model_folder(bare))


def test_the_shipped_cards_state_use_and_limits_and_print_their_results(capsys: pytest.CaptureFixture) -> None:
    for name in ("brain-tissue-unet", "brain-tissue-deepmedic"):
        card = read_card(ROOT / "models" / name / "model_card.json")
        assert card.name == name and card.intended_use and len(card.limitations) >= 3
        assert main(["models", name]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"# {name}\n") and card.limitations[0] in out
        rows = card.evaluation["rows"]
        other = card.evaluation["compared_with"].rstrip("/").split("/")[-1]
        first = rows[0][name]["GM"], rows[0][other]["GM"]  # the table gives both models' values, in that order
        assert f"| {rows[0]['condition']} |" in out and f"{first[0]:.3f} ({first[1]:.3f})" in out
    assert main(["models", "brain-tissue-unet"]) == 0
    out = capsys.readouterr().out
    assert "- members/deepmedic-outline: deepmedic, temperature 1.01, outline member" in out
    assert "- on a scan judged skull-stripped: background odds x 0.5\n- on a scan with the skull on: background " \
           "odds x 1.25\n" in out
    assert main(["models", "no-such-model"]) == 2
    assert "no-such-model: neither an existing path nor a bundled model folder" in capsys.readouterr().err
