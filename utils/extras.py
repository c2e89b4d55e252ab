"""Optional packages: the features that need one, and the requirements file that installs it.

requirements.txt holds what every run needs; a feature that needs more names its file here, so that a missing
package is one error line with the command that installs it."""

import importlib.util

from utils.errors import InputError

EXTRAS = {  # feature: (the module it imports, the requirements file that installs it)
    "room": ("pyroomacoustics", "requirements-room.txt"),
    "tensorboard": ("tensorboard", "requirements-tensorboard.txt"),
    "mlflow": ("mlflow", "requirements-mlflow.txt"),
    "wandb": ("wandb", "requirements-wandb.txt"),
}


def installed(extra: str) -> bool:
    return importlib.util.find_spec(EXTRAS[extra][0]) is not None


def needs(extra: str) -> str:
    """'needs the <package> package: <install command>'."""
    module, requirements = EXTRAS[extra]
    return f"needs the {module} package: python -m pip install -r {requirements} -c constraints.txt"


def require(extra: str, what: str) -> None:
    """InputError '<what> needs …' unless `extra`'s package is installed."""
    if not installed(extra):
        raise InputError(f"{what} {needs(extra)}")
