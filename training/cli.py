"""train.py's command line: the parser made from config.py's settings, --config files, a resumed run's settings,
and the checks of the values against this machine and the data."""

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

import config
from audio_data.classes import find_frequencies, frequency_hz, run_classes
from audio_data.manifest import read_manifest, write_manifest
from config import Exclusions, RunConfig
from losses import ghm_flag_problems
from utils import extras
from utils.checkpoints import load_checkpoint, newest_checkpoint, stored_config
from utils.common_utils import device_available
from utils.errors import InputError
from utils.io_utils import MB, read_regular
from utils.run_paths import MAX_NAME, NAME_PART

CONFIG_LIMIT, EXCLUSIONS_LIMIT = 16 * MB, 64 * MB  # the largest --config and --exclude-recordings files read


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an audio ranker (standard or GHM margin ranking loss). Flags "
                                            "marked [resumable] may change when a run is resumed or requeued.")
    config.add_arguments(p)
    aliases = p.add_argument_group("aliases")
    aliases.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                         help="--logger with tensorboard added (--no-tensorboard: taken out) [resumable]")
    files = p.add_argument_group("configuration")
    files.add_argument("--config", metavar="FILE",
                       help="a YAML file of settings (keys are flag names, e.g. learning_rate or learning-rate) that "
                            "replace the defaults; flags on the command line override it; a run's own config.yaml "
                            "starts the same run again")
    files.add_argument("--write-manifest", metavar="FILE.csv",
                       help="write the manifest of the folder layout under --data-root (every recording found: path, "
                            "class, material, frequency, seq) to FILE.csv, to edit and give to --manifest, and exit")
    files.add_argument("--print-config", action="store_true",
                       help="print the effective configuration as YAML (what config.yaml holds and --config reads) "
                            "and exit")
    return p


def read_exclusions(parser: argparse.ArgumentParser, path: str) -> Exclusions:
    """--exclude-recordings: the file's non-empty lines (comments after #)."""
    try:
        text = read_regular(path, EXCLUSIONS_LIMIT).decode("utf-8")
    except InputError as exc:
        parser.error(f"--exclude-recordings {exc}")
    except UnicodeDecodeError:
        parser.error(f"--exclude-recordings {path}: not UTF-8 text")
    return Exclusions.of([entry for entry in (line.split("#", 1)[0].strip() for line in text.splitlines()) if entry])


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (a few lines of nested aliases expand into gigabytes) and without
    duplicate keys (which would silently keep the last value)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a config file",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {str(key)[:40]!r} appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def shown(value: Any) -> str:
    """A value as an error message shows it: its first characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_file_values(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """The settings of a --config YAML file; parser errors name the file and the key. A `resume` entry (an older
    run's config.yaml) is left out: a config file starts a run anew, --resume continues one."""
    try:
        values = yaml.load(read_regular(path, CONFIG_LIMIT).decode("utf-8"), Loader=StrictLoader)
    except InputError as exc:
        parser.error(f"--config {exc}")
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        parser.error(f"--config {path}: cannot be read as YAML ({str(exc).splitlines()[0][:200]})")
    if not isinstance(values, dict):
        parser.error(f"--config {path}: not a mapping of flag names to values")
    keys = {str(key).replace("-", "_"): key for key in values}
    try:
        values = config.migrate({name: values[key] for name, key in keys.items()})  # an older run's config.yaml
    except ValueError as exc:
        parser.error(f"--config {path}: {str(exc)[:200]} (keys are train.py's flag names)")
    if values.pop("resume", None) is not None:
        warnings.warn(f"--config {path}: its resume entry is left out (give --resume to continue a run)")
    for name, value in values.items():
        if not config.value_fits(name, value):
            parser.error(f"--config {path}: key {shown(keys.get(name, name))} holds {shown(value)}, not a value of "
                         f"--{name.replace('_', '-')}")
    return values


def changed_setting(given: dict[str, Any], saved: dict[str, Any]) -> str | None:
    """The first setting, besides those a resumed run may change, whose given value differs from the run's own."""
    return next((key for key, value in given.items()
                 if key not in config.RESUMABLE and key in saved and saved[key] != value), None)


def resumable_list() -> str:
    return ", ".join(f"--{key.replace('_', '-')}" for key in config.RESUMABLE if key != "resume")


def resumed_values(parser: argparse.ArgumentParser, given: dict[str, Any], resume: str) -> dict[str, Any]:
    """The run's own settings from its newest checkpoint, with the resumable flags that were given."""
    try:
        path = newest_checkpoint(resume, "--resume")
        checkpoint = load_checkpoint(path, "--resume", ("args", "epoch"))
        saved = stored_config(checkpoint, "--resume", path, "a checkpoint this program can resume").flat()
    except InputError as exc:
        parser.error(str(exc))
    done = checkpoint["epoch"]
    if given.get("epochs", done) < done:
        parser.error(f"--epochs {given['epochs']}: the run in {path} has already trained {done} epochs; "
                     "give at least that many")
    if key := changed_setting(given, saved):
        parser.error(f"--{key.replace('_', '-')} {given[key]}: the run in {path} was trained with {saved[key]}; "
                     f"a resumed run keeps its arguments (it may change {resumable_list()})")
    return {**saved, **{key: given[key] for key in config.RESUMABLE if key in given}, "resume": str(path)}


def check_config(parser: argparse.ArgumentParser, cfg: RunConfig) -> RunConfig:
    """Reject bad values before any data is loaded; the configuration with the run's classes found."""
    data, devices, run = cfg.data, cfg.devices, cfg.run
    rules = [("--frequency", data.frequency is not None, "is required"),
             ("--frequency", data.frequency in (None, "all") or all(frequency_hz(f) is not None
                                                                   for f in data.frequency.split(","))
              or data.manifest is not None and "all" not in data.frequency.split(","),
              "must be <N>hz as in the file names (e.g. 1000hz), several separated by commas, or all"),
             ("--frequency", data.frequency is None or len(set(data.frequency.split(","))) == len(
                 data.frequency.split(",")), "names a frequency twice"),
             ("--material", len(set(data.material.split(","))) == len(data.material.split(",")),
              "names a material twice"),
             ("--material", len(data.material) <= MAX_NAME and all(NAME_PART.fullmatch(m)
                                                                   for m in data.material.split(",")),
              f"must be folder names separated by commas (letters, digits, '.', '_', '+', '-'; no path), {MAX_NAME} "
              "characters at most"),
             ("--classes", data.classes is None or all(NAME_PART.fullmatch(c) and len(c) <= MAX_NAME
                                                       for c in data.classes.split(",")),
              f"must be folder names separated by commas, each of {MAX_NAME} characters at most"),
             ("--run-name", run.run_name is None or NAME_PART.fullmatch(run.run_name) is not None
              and len(run.run_name) <= MAX_NAME,
              f"must be a folder name (letters, digits, '.', '_', '+', '-'; no path) of {MAX_NAME} characters at "
              "most"),
             ("--fold", data.fold is None or bool(data.folds) and data.fold <= data.folds,
              "needs --folds K and must be at most K"),
             ("--folds", not data.folds or not data.test_fraction,
              "holds each fold out as the test split: not with --test-fraction"),
             ("--data-on-device", not devices.data_on_device or not data.cache_dir and not devices.num_workers,
              "needs the spectrograms in memory and the batches gathered in the main process: not with --cache-dir "
              "or --num-workers"),
             ("--device", devices.device == "auto" or device_available(devices.device), "is not available here"),
             ("--sync-bn", not devices.sync_bn or device_available("cuda"), "needs CUDA (PyTorch's SyncBatchNorm)"),
             *((f"--logger {name}", extras.installed(name), extras.needs(name))
               for name in run.trackers() if name in extras.EXTRAS)]
    for flag, ok, problem in rules:
        if not ok:
            parser.error(f"{flag} {problem}")
    for flag, problem in [*config.value_problems(cfg), *ghm_flag_problems(cfg.loss).items()]:
        parser.error(f"{flag} {problem}")
    if data.demo:
        return cfg.with_values(classes=data.classes or ",".join(config.CLASSES))
    return cfg.with_values(classes=",".join(checked_classes(parser, data)))


def manifest_classes(parser: argparse.ArgumentParser, data: config.DataConfig) -> list[str]:
    """The run's classes in rank order from --manifest; parser errors when it does not hold the run's recordings."""
    try:
        manifest = read_manifest(data.manifest, data.classes)
    except InputError as exc:
        parser.error(str(exc))
    if missing := [m for m in data.material.split(",") if m not in manifest.materials]:
        parser.error(f"--material {data.material}: the manifest has no {', '.join(missing)} recordings; found: "
                     f"{', '.join(manifest.materials)}")
    if data.frequency != "all" and (missing := [f for f in data.frequency.split(",")
                                                if f not in manifest.frequencies]):
        parser.error(f"--frequency {data.frequency}: the manifest has no {', '.join(missing)} recordings; found: "
                     f"{', '.join(manifest.frequencies)}")
    if manifest.has_splits and (data.test_fraction or data.folds):
        flag = f"--test-fraction {data.test_fraction}" if data.test_fraction else f"--folds {data.folds}"
        parser.error(f"{flag}: the manifest's split column fixes the split")
    return manifest.classes


def checked_classes(parser: argparse.ArgumentParser, data: config.DataConfig) -> list[str]:
    """The run's classes in rank order; parser errors when the data folder does not hold the run's recordings."""
    if data.manifest:
        return manifest_classes(parser, data)
    root = Path(data.root)
    if not root.is_dir():
        parser.error(f"--data-root {root}: folder not found (use --demo for the demo dataset)")
    try:
        classes = run_classes(root, data.material, data.classes)
    except InputError as exc:
        parser.error(str(exc))
    found = find_frequencies(root, classes, data.material.split(","))
    if not found:
        parser.error(f"--material {data.material}: no <material>_<class>_<N>hz_<seq>.wav recordings under "
                     f"{root}/<class>/{data.material}")
    if data.frequency != "all" and (missing := [f for f in data.frequency.split(",") if f not in found]):
        parser.error(f"--frequency {data.frequency}: no {', '.join(missing)} recordings under "
                     f"{root}/<class>/{data.material}; found: {', '.join(found) or 'none'}")
    return classes


def manifest_defaults(parser: argparse.ArgumentParser, values: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """With --manifest: every material of the manifest unless --material is given; --seqs, the folder layout's,
    is an error."""
    if "seqs" in explicit:
        parser.error("--seqs: not with --manifest, whose rows are all taken (leave rows out of the manifest instead)")
    if "material" in explicit:
        return {}
    try:
        return {"material": ",".join(read_manifest(values["manifest"], values["classes"]).materials)}
    except InputError as exc:
        parser.error(str(exc))


def write_manifest_and_exit(parser: argparse.ArgumentParser, root: str, out: str) -> None:
    """--write-manifest: the folder layout under `root` as a manifest at `out`."""
    try:
        count = write_manifest(Path(root), Path(out))
    except InputError as exc:
        parser.error(str(exc))
    print(f"wrote {out}: {count} recordings under {root}")
    parser.exit(0)


def with_tensorboard(on: bool, logger: str) -> str:
    """--logger's value with tensorboard added (`on`) or taken out."""
    names = [name for name in logger.split(",") if name != "tensorboard"]
    return ",".join(names + ["tensorboard"] if on else names)


def parse_args(argv: list[str] | None = None) -> RunConfig:
    """The run's configuration: defaults, then --config's file, then the flags given; with --resume the run's
    own settings and the resumable flags given. --print-config prints it and exits."""
    parser = get_args_parser()
    given = vars(parser.parse_args(argv))  # the flags have no defaults: only what the command line gave
    config_file, print_config = given.pop("config", None), given.pop("print_config", False)
    if (out := given.pop("write_manifest", None)) is not None:
        write_manifest_and_exit(parser, given.get("data_root", config.DATA_ROOT), out)
    if "exclude_recordings" in given:  # the flag names a file; the setting is its list
        given["exclude_recordings"] = read_exclusions(parser, given["exclude_recordings"])
    values, file_values = config.defaults(), {}
    if config_file:
        if "resume" in given:
            parser.error("--config: a resumed run keeps its own settings; give --resume alone")
        file_values = config_file_values(parser, config_file)
        values.update(file_values)
    tensorboard = given.pop("tensorboard", None)  # the alias of tensorboard in --logger
    values.update(given)
    if values["resume"]:
        values = resumed_values(parser, given, values["resume"])
    if tensorboard is not None:
        values["logger"] = with_tensorboard(tensorboard, values["logger"])
    if values["manifest"] and not values["resume"]:
        values.update(manifest_defaults(parser, values, explicit={*given, *file_values}))
    if values["data_root"] is None:
        values["data_root"] = config.DEMO_DATA_ROOTS[values["demo"]] if values["demo"] else config.DATA_ROOT
    cfg = check_config(parser, RunConfig.from_flat(values))
    if print_config:
        sys.stdout.write(config.to_yaml(cfg))
        parser.exit(0)
    return cfg
