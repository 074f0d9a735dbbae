import json
import shutil

import soundfile as sf

from tests.conftest import tone
from train.evaluate import main


def test_scoring_a_split_the_model_was_trained_on_says_so(random_model_dir, tmp_path, capsys):
    """A model refitted on train + valid scores valid with a note that those scores are not held out."""
    model = tmp_path / "model"
    shutil.copytree(random_model_dir, model)
    data, splits = tmp_path / "data", tmp_path / "splits"
    (data / "blues").mkdir(parents=True)
    splits.mkdir()
    for i in range(2):
        sf.write(data / "blues" / f"blues.{i:05d}.wav", tone(220.0 * (i + 1), 2.0), 22_050)
    for name, listed in (("train", "blues/blues.00000.wav"), ("valid", "blues/blues.00001.wav"), ("test", "")):
        (splits / f"{name}_filtered.txt").write_text(listed + "\n")
    args = ["--model", str(model), "--data", str(data), "--split-dir", str(splits), "--json"]

    def note(split: str) -> bool:
        assert main([*args, "--split", split]) == 0
        return "not held out" in capsys.readouterr().err

    assert not note("valid")  # no metrics.json: nothing known about its training
    (model / "metrics.json").write_text(json.dumps({"history": [{"epoch": 0}]}))
    assert not note("valid")
    (model / "metrics.json").write_text(json.dumps({"history": [{"epoch": 0}, {"refit_on": "train+valid"}]}))
    assert note("valid") and note("train")
