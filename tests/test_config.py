"""The typed run configuration: the parser made from it, config files, --print-config and stored arguments."""

import pytest
import yaml
from conftest import tiny_train_args

import config
import train
from config import RunConfig


def test_every_setting_has_one_flag_one_group_and_a_default_that_keeps_its_rule():
    parser = train.get_args_parser()
    groups = {group.title: [a.dest for a in group._group_actions] for group in parser._action_groups}
    for section, (cls, title) in config.SECTIONS.items():
        assert groups[title] == [key for key, (owner, _) in config.KEYS.items() if owner == section]
    assert groups["aliases"] == ["tensorboard"]
    # and --help, --config, --write-manifest, --print-config
    assert sum(len(keys) for keys in groups.values()) == len(config.KEYS) + 5
    assert config.value_problems(RunConfig()) == []
    assert all(config.value_fits(key, value) for key, value in config.defaults().items())


def test_the_registries_are_keyed_by_the_configurations_names():
    from losses import LOSS_TYPES
    from models import MODELS
    from models.pair_forward import PAIR_FORWARD
    from training.loop import AMP_DTYPES
    from utils import extras
    from utils.history import MONITORS
    from utils.tracking import BACKENDS

    assert tuple(MODELS) == config.MODEL_NAMES and tuple(PAIR_FORWARD) == config.PAIR_FORWARDS
    assert tuple(AMP_DTYPES) == config.AMP_MODES and tuple(MONITORS) == config.MONITORS
    assert set(extras.EXTRAS) >= set(config.LOGGERS) - {"csv"} and set(BACKENDS) == set(config.LOGGERS) - {
        "csv", "tensorboard"}
    assert LOSS_TYPES == config.LOSS_TYPES


def test_a_boolean_from_a_config_file_is_switched_off_on_the_command_line(tiny_data, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("skip_bad_files: true\ntensorboard: false\nfrequency: 500hz\n")
    base = ["--config", str(path), "--data-root", str(tiny_data)]
    assert train.parse_args(base).data.skip_bad_files
    assert not train.parse_args([*base, "--no-skip-bad-files"]).data.skip_bad_files
    assert not train.parse_args([*base, "--no-progress"]).run.progress
    assert train.parse_args(base).run.progress


def test_the_learning_rate_not_given_is_the_models_own_and_is_stored_as_a_number(tiny_data, tmp_path):
    base = ["--data-root", str(tiny_data), "--frequency", "1000hz"]
    for name in config.MODEL_NAMES:
        rate = train.parse_args([*base, "--model", name]).optim.learning_rate
        assert rate == config.MODEL_LEARNING_RATES.get(name, config.LEARNING_RATE)
    assert config.LEARNING_RATE not in config.MODEL_LEARNING_RATES.values()  # so that the test above can fail
    assert train.parse_args([*base, "--model", "simple_cnn", "--learning-rate", "0.05"]).optim.learning_rate == 0.05
    path = tmp_path / "run.yaml"
    path.write_text("model: simple_cnn\n")  # a config file's model decides the rate as a flag's does
    assert train.parse_args(["--config", str(path), *base]).optim.learning_rate == config.LEARNING_RATE
    stored = config.stored(train.parse_args([*base, "--model", "onset_residual"]))
    assert stored["learning_rate"] == config.MODEL_LEARNING_RATES["onset_residual"]
    assert config.from_stored({**stored, "model": "simple_cnn"}).optim.learning_rate == stored["learning_rate"]


def test_print_config_is_what_config_reads_back(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--ghm-max-weight", "inf", "--no-progress")
    expected = train.parse_args(argv)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args([*argv, "--print-config"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out == config.to_yaml(expected)
    assert "# loss and GHM\n" in out and yaml.safe_load(out)["format_version"] == config.CONFIG_FORMAT
    path = tmp_path / "printed.yaml"
    path.write_text(out)
    assert train.parse_args(["--config", str(path)]) == expected


def test_stored_arguments_of_the_first_format_migrate():
    old = {"data_root": "data", "material": "plastic", "frequency": "1000hz", "seed": 3, "no_progress": True,
           "demo": True, "loss_type": "standard"}
    cfg = config.from_stored(old)
    assert (cfg.run.progress, cfg.data.demo, cfg.loss.type, cfg.run.seed) == (False, "synthetic", "standard", 3)
    assert cfg.data.classes == ",".join(config.CLASSES)  # a run from before --classes used the six classes
    assert cfg.model.name == "simple_cnn"  # stored arguments without a model are the old script's: its CNN
    assert config.from_stored(config.stored(cfg)) == cfg
    for bad, message in (({**old, "format_version": 9}, "format_version 9"), ({**old, "epochz": 1}, "unknown key"),
                         ({**old, "margin": "10"}, "margin = '10'"), ({"seed": 1}, "lack data_root")):
        with pytest.raises(ValueError, match=message):
            config.from_stored(bad)


def test_help_shows_the_groups_and_what_a_resumed_run_may_change(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = capsys.readouterr().out
    for title in ("data:", "model:", "loss and GHM:", "optimisation:", "run and outputs:", "devices:"):
        assert f"\n{title}\n" in out
    # and the description says what it means, and --tensorboard, the alias of a resumable flag
    assert out.count("[resumable]") == len(config.RESUMABLE) + 2
    assert "--no-skip-bad-files" in out and "--no-progress" in out
