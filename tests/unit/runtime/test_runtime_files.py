"""save_state/load_state and the one atomic writer: whole files or none, one-line errors naming the file."""
from __future__ import annotations

import os

import pytest
import torch

from nas.runtime.errors import UserError
from nas.runtime.files import atomic_write, atomic_write_text, load_state, save_state


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_a_state_dict_round_trips_and_a_model_checkpoint_gives_its_model(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    save_state(model.state_dict(), tmp_path / "w.pt")
    state = load_state(tmp_path / "w.pt")
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).load_state_dict(state)
    save_state({"model": model.state_dict(), "epoch": 3}, tmp_path / "trainer.pt")
    assert load_state(tmp_path / "trainer.pt").keys() == model.state_dict().keys()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    (b"", "cannot load weights"),
    (b"not a torch file at all", "cannot load weights"),
    ("truncated", "cannot load weights"),
    ("a list", "not a state_dict"),
    ("a directory", "is a directory"),
])
def test_a_bad_weights_file_is_one_user_error_naming_it(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if content == "truncated":
        save_state({"w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif content == "a list":
        torch.save([torch.ones(2)], path)
    elif content == "a directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        load_state(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    with pytest.raises(UserError) as err:
        load_state(path, setting="weights")  # a setting: its key here, its flag on the command line
    assert str(err.value).startswith(f"{path}: weights: ") and err.value.setting == "weights"
    with pytest.raises(UserError) as err:  # a path named in a config file: the config's key, then the file
        load_state(path, source="run.yaml", field="netadapt.weights")
    assert str(err.value).startswith(f"run.yaml: netadapt.weights: {path}: ")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "w.pt"
    save_state({"w": torch.zeros(2)}, path)
    before = path.read_bytes()

    def dies_half_way(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies_half_way)
    assert path.read_bytes() == before and leftovers(tmp_path) == []
    with pytest.raises(Exception, match="pickle"):  # torch.save cannot write it: nothing is written
        save_state({"w": lambda: 0}, tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists() and leftovers(tmp_path) == []


def test_an_unwritable_path_is_a_user_error(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        save_state({"w": torch.zeros(1)}, tmp_path / "dir.pt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create its folder"):
        atomic_write_text(tmp_path / "file" / "sub.txt", "y")
    if os.geteuid() != 0:
        os.chmod(tmp_path / "dir.pt", 0o500)
        with pytest.raises(UserError, match="cannot write"):
            save_state({"w": torch.zeros(1)}, tmp_path / "dir.pt" / "w.pt")
