"""Angle estimates for recordings without labels: each is scored once by a trained ranker, and the checkpoint's
calibration turns the score into a class, an angle and a confidence.

    python predict.py --checkpoint saved_models/model_checkpoints/<run>/model_best.pt new_recordings/ one.wav
"""

import argparse
import sys
import warnings
from pathlib import Path

import torch

from analysis.evaluation import Recordings, evaluate_model
from analysis.report import check_table_output, write_table
from analysis.run_calibration import checkpoint_calibration
from audio_data.audio import is_audio
from audio_data.loading import load_recordings
from audio_data.manifest import unlabelled_manifest
from audio_data.naming import recording_labels
from audio_data.spectrogram_dataset import fitting_spectrograms, model_features, named_subsets
from audio_data.tone_features import feature_matrix
from config import DEVICES, DataConfig
from models import check_input_size, checkpoint_model
from models.common import reads_features
from utils.checkpoints import checkpoint_run
from utils.common_utils import choose_device
from utils.errors import InputError, run_command


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Estimate the source angle of recordings with a trained ranker.")
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint written by train.py (model_best.pt, model_epoch_<N>.pt), or a run folder "
                        "(its newest checkpoint)")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="recordings (WAV, FLAC, OGG, AIFF, ...: any format libsndfile reads; another sample rate than "
                        "the run's is resampled) and folders (searched recursively)")
    p.add_argument("--manifest", metavar="FILE.csv",
                   help="score the recordings a CSV lists (a path column, relative to its folder), in place of PATHs; "
                        "its other columns are carried to the output")
    p.add_argument("--out", help="the CSV to write (default: predictions_<checkpoint name>.csv beside it); never an "
                                 "input of the command, and an existing file only if it is such a CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file of any kind")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="skip unreadable recordings and those whose length does not fit the run, "
                        "with a warning each (default: they are errors)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    return p


def find_audio(paths: list[str]) -> list[Path]:
    """The given files, and every recording under the given folders (any audio file ending: audio_data/audio.py),
    in a stable order, each once."""
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if is_audio(p) and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: {'not a regular file or folder' if path.exists() else 'no such file or folder'}")
    if not found:
        raise InputError(f"no audio files in {', '.join(paths)}")
    return list(dict.fromkeys(found))


def run_audio(checkpoint: dict, data: DataConfig) -> tuple[int, int]:
    """The sample rate and length (samples) of the run's recordings: stored in the checkpoint, or for an older
    checkpoint read from the run's recordings' headers."""
    audio = checkpoint.get("audio")
    if isinstance(audio, dict) and all(isinstance(audio.get(k), int) for k in ("sample_rate", "samples")):
        return audio["sample_rate"], audio["samples"]
    try:
        recordings = load_recordings(data)
    except InputError as exc:
        raise InputError(f"the checkpoint does not say which sample rate and length the run's recordings had, "
                         f"and they cannot be read ({exc})") from None
    return recordings.sample_rate, recordings.length


def run_features(paths: list[Path], data: DataConfig, length: int, sample_rate: int) -> torch.Tensor:
    """The features a model that reads them gets for `paths`, as the run measured its own: at its rate, cropped
    with --duration; in a run that pools subsets each recording's subset comes from its file name."""
    names = data.subsets
    if len(names) == 1:
        subsets, frequencies = torch.zeros(len(paths), dtype=torch.int64), data.frequency
    else:  # named_subsets has checked that each file name gives one of the run's materials and frequencies
        subsets, frequencies = named_subsets(paths, names), [recording_labels(str(p))["frequency"] for p in paths]
    measured = torch.from_numpy(feature_matrix([str(p) for p in paths], frequencies,
                                               length if data.duration is not None else None, sample_rate, view=True))
    return model_features(measured, subsets, len(names))


def predict(args: argparse.Namespace) -> int:
    if bool(args.paths) == bool(args.manifest):
        raise InputError("give the recordings as PATHs or as --manifest FILE.csv, one of the two")
    path, checkpoint, cfg = checkpoint_run(args.checkpoint)
    wavs, extra = unlabelled_manifest(args.manifest) if args.manifest else (find_audio(args.paths), None)
    out = Path(args.out) if args.out else path.parent / f"predictions_{path.stem}.csv"
    check_table_output(out, [path, *wavs, *([Path(args.manifest)] if args.manifest else [])], args.overwrite)
    device = choose_device(args.device)
    model = checkpoint_model(checkpoint, cfg.model.name, path, device)
    calibration = checkpoint_calibration(checkpoint, cfg, model, device, f"--checkpoint {path}")
    sample_rate, length = run_audio(checkpoint, cfg.data)
    data, kept = fitting_spectrograms(wavs, cfg.data.n_fft, cfg.data.hop_length, sample_rate, length,
                                      cfg.data.duration, args.skip_bad_files, cfg.data.db_reference)
    if not kept:
        raise InputError("none of the recordings could be scored")
    check_input_size(cfg.model.name, tuple(data.shape[1:]))
    extra = extra and [dict(zip(wavs, extra))[p] for p in kept]  # the manifest's own columns of the kept ones
    features = None
    if reads_features(model):  # measured as the run measured its own: at its rate, cropped with --duration
        features = run_features(kept, cfg.data, length, sample_rate)
    report = evaluate_model(model, Recordings(data, [str(p) for p in kept], calibration["classes"], extra=extra,
                                              features=features), device, calibration,
                            f"{path.parent.name} (predictions)")
    write_table(report, out)
    counts = {c: int((report.guess["class"] == k).sum()) for k, c in enumerate(calibration["classes"])}
    print(f"{len(kept)} recordings scored with {path}: "
          + ", ".join(f"{c} {n}" for c, n in counts.items() if n) + f"; wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    return run_command(lambda: predict(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
