"""The layers of docs/architecture.md, enforced: import-linter's contracts in .importlinter, config.py below every
package, the refactoring report's public names importable, and no package named like a well-known one."""

import ast
import shutil
import subprocess
import sys

from conftest import ROOT

PACKAGES = ("audio_data", "models", "losses", "training", "analysis", "utils")
LINT = ("from importlinter.cli import lint_imports; import sys; "
        "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True))")


def lint(folder) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT], cwd=folder, capture_output=True, text=True,
                          env={"PATH": "", "PYTHONPATH": str(folder), "COLUMNS": "200"})


def test_every_package_imports_only_the_layers_below_it():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_an_entry_script_import_and_a_cycle_each_break_a_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    with open(tmp_path / "utils" / "io_utils.py", "a") as f:  # function-level imports count too
        f.write("\n\ndef upward():\n    from training import loop\n    import evaluate\n")
    with open(tmp_path / "training" / "loop.py", "a") as f:  # training.fit imports training.loop
        f.write("\n\ndef cycle():\n    from training import fit\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "0 kept, 3 broken" in result.stdout
    assert "utils.io_utils -> training.loop" in result.stdout and "utils.io_utils -> evaluate" in result.stdout
    assert "cycles are allowed in training" in result.stdout and ".loop -> .fit" in result.stdout


def test_config_imports_nothing_of_the_project():
    tree = ast.parse((ROOT / "config.py").read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    project = set(PACKAGES) | {"train", "evaluate", "predict", "train_with_ghm"}
    assert not names & project


def test_the_refactoring_reports_names_stay_importable():
    from losses.ghm_loss import GHMRankingLoss
    from models.resnet_ranker import ResNetAudioRanker, SimpleCNNAudioRanker
    from train import get_args_parser, main, parse_args
    from train_with_ghm import check_batch_consistency
    from utils.common_utils import set_seed, worker_init_fn
    from utils.debugging_utils import verify_batch_consistency
    from utils.ghm_utils import ghm_stats_table, load_ghm_stats

    assert all(callable(name) for name in (GHMRankingLoss, ResNetAudioRanker, SimpleCNNAudioRanker, get_args_parser,
                                           main, parse_args, check_batch_consistency, set_seed, worker_init_fn,
                                           verify_batch_consistency, ghm_stats_table, load_ghm_stats))


def test_no_folder_shadows_hugging_faces_datasets():
    assert not (ROOT / "datasets").exists()
