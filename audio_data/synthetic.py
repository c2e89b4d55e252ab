"""Deterministic demo recordings in the real layout: `python -m audio_data.synthetic --out DIR`.

A loudspeaker plays a sine tone in a small room; the microphone stays put and the loudspeaker is
turned by the class angle θ (the number in the class name: deg036 is 36°). What θ changes, as it would in a
real room:
  * the direct sound falls off axis by `directivity_db · sin²(θ/2)`, more at higher frequencies;
  * the reverberant field depends on the radiated power, not the direction, so the
    direct-to-reverberant ratio falls with θ;
  * a reflection off the wall behind the loudspeaker (fixed path, fixed delay) grows as the
    loudspeaker turns towards the wall;
  * the background noise keeps its absolute level, so the signal-to-noise ratio falls with θ.
Each recording jitters the placement, the room gain and the noise, so neighbouring angles overlap.
The material sets the reflection strength and the reverberation time. Any angles (`--angles`) and tone
frequencies (`--frequencies`, the directivity interpolated in log frequency) can be generated; the defaults
are the old data set's six classes and three frequencies.
"""

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

import config
from audio_data.classes import angle_class, class_angle, frequency_hz
from audio_data.naming import recording_name
from utils.io_utils import atomic_path, save_json

SEED = 20240611
# Loudspeaker directivity (on-axis minus 180° level, dB) at three frequencies; others are interpolated in log f.
DIRECTIVITY_HZ, DIRECTIVITY_DB = (500.0, 1000.0, 3000.0), (9.0, 11.0, 13.0)
# (reflection gain, reverberation time in s, reverberant level re on-axis direct sound in dB)
MATERIAL_ROOM = {"plastic": (0.08, 0.30, -16.0), "box": (0.05, 0.18, -20.0)}
NOISE_DBFS = -64.0
REFLECTION_DELAY_S = 0.0025  # wall path minus direct path; turning the loudspeaker keeps it
MARKER = "demo_dataset.json"
MISLABELLED = "mislabelled.json"  # --mislabel's manifest


def tone(n: int, sample_rate: int, freq: float, start: int, stop: int, phase: float) -> np.ndarray:
    """A sine burst from `start` to `stop` with 5 ms raised-cosine ramps."""
    t = np.arange(n) / sample_rate
    envelope = np.zeros(n)
    envelope[start:stop] = 1.0
    ramp = int(0.005 * sample_rate)
    shape = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[start:start + ramp] = shape
    envelope[stop - ramp:stop] = shape[::-1]
    return envelope * np.sin(2 * np.pi * freq * t + phase)


def reverberate(signal: np.ndarray, sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with exponentially decaying noise of unit energy (a diffuse reverberant tail)."""
    t = np.arange(int(1.5 * rt60 * sample_rate)) / sample_rate
    impulse = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60)
    impulse /= np.sqrt(np.sum(impulse ** 2))
    return convolve(signal, impulse)


def convolve(signal: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """`signal` through the filter `impulse`, as long as `signal` (the tail cut off)."""
    size = len(signal) + len(impulse)
    return np.fft.irfft(np.fft.rfft(signal, size) * np.fft.rfft(impulse, size), size)[:len(signal)]


def seed_key(value: str, known: list[str], number: float) -> int:
    """A recording's seed part: the index among the old data set's names (so that its recordings stay as they
    were), else a number of its own from the angle or frequency."""
    return known.index(value) if value in known else 10_000 + int(round(number * 10))


def synthesize(class_name: str, material: str, frequency: str, seq: int,
               sample_rate: int, duration: float) -> np.ndarray:
    """One recording at the class's angle, float samples peaking below 0.9."""
    angle, hz = class_angle(class_name), frequency_hz(frequency)
    rng = np.random.default_rng([SEED, seed_key(class_name, config.CLASSES, angle),
                                 config.MATERIALS.index(material), seed_key(frequency, config.FREQUENCIES, hz), seq])
    theta = np.deg2rad(angle)
    n = int(round(duration * sample_rate))
    start = int((0.1 + 0.02 * rng.random()) * n)
    source = tone(n, sample_rate, hz, start, int(0.75 * n), 2 * np.pi * rng.random())
    reflection_gain, rt60, reverb_db = MATERIAL_ROOM[material]

    off_axis = np.sin(theta / 2) ** 2
    directivity = np.interp(np.log(hz), np.log(DIRECTIVITY_HZ), DIRECTIVITY_DB)
    direct_db = -directivity * off_axis + rng.normal(0.0, 0.5)
    delay = int(REFLECTION_DELAY_S * sample_rate)
    reflection = reflection_gain * (0.3 + 0.7 * off_axis) * np.roll(source, delay)
    reflection[:delay] = 0.0
    reverb = 10 ** ((reverb_db + rng.normal(0.0, 0.5)) / 20) * reverberate(source, sample_rate, rt60, rng)
    noise = 10 ** ((NOISE_DBFS + rng.normal(0.0, 1.0)) / 20) * rng.standard_normal(n)
    return 0.5 * (10 ** (direct_db / 20) * source + reflection + reverb) + noise


def mislabelled_slots(classes: list[str], material: str, frequency: str, seqs: int, count: int) -> dict:
    """{(written class, seq): true class} for `count` recordings of one material and frequency, drawn with a
    seed of their own: each is recorded at another class's angle and written as the class's own recording."""
    rng = np.random.default_rng([SEED, 7, config.MATERIALS.index(material),
                                 seed_key(frequency, config.FREQUENCIES, frequency_hz(frequency))])
    slots = rng.choice(len(classes) * seqs, size=min(count, len(classes) * seqs), replace=False)
    chosen = {}
    for slot in sorted(slots.tolist()):
        written = slot // seqs
        true = (written + 1 + int(rng.integers(len(classes) - 1))) % len(classes)
        chosen[(classes[written], slot % seqs)] = classes[true]
    return chosen


def generate(out: str | Path, sample_rate: int = 48000, duration: float = 2.0, seqs: int = 9,
             classes: list[str] = config.CLASSES, materials: list[str] = config.MATERIALS,
             frequencies: list[str] = config.FREQUENCIES, mislabel: int = 0) -> Path:
    """Write the demo dataset (16-bit WAV) under `out` and a marker file describing it. With `mislabel` k, k
    recordings of each material and frequency are recorded at another class's angle (a take of their own, not a
    copy of one of that class's recordings) and written as their folder's class; `mislabelled.json` lists them."""
    out, manifest = Path(out), []
    for material in materials:
        for frequency in frequencies:
            wrong = mislabelled_slots(classes, material, frequency, seqs, mislabel) if mislabel else {}
            for class_name in classes:
                for seq in range(seqs):
                    true = wrong.get((class_name, seq), class_name)
                    take = seq if true == class_name else 1000 + seq
                    samples = synthesize(true, material, frequency, take, sample_rate, duration)
                    name = recording_name(material, class_name, frequency, f"{seq:02d}")
                    with atomic_path(out / class_name / material / name) as tmp:
                        sf.write(tmp, samples, sample_rate, subtype="PCM_16", format="WAV")
                    if true != class_name:
                        manifest.append({"path": f"{class_name}/{material}/{name}", "file": name,
                                         "written_class": class_name, "true_class": true})
    if mislabel:
        save_json(manifest, out / MISLABELLED)
    save_json(describe(sample_rate, duration, seqs, classes, materials, frequencies, mislabel), out / MARKER)
    return out


def describe(sample_rate: int, duration: float, seqs: int, classes: list[str], materials: list[str],
             frequencies: list[str], mislabel: int = 0) -> dict:
    return {"seed": SEED, "sample_rate": sample_rate, "duration": duration, "seqs": seqs,
            "classes": list(classes), "materials": list(materials), "frequencies": list(frequencies),
            **({"mislabel": mislabel} if mislabel else {})}


DEFAULT = describe(48000, 2.0, 9, config.CLASSES, config.MATERIALS, config.FREQUENCIES)


def class_names(angles: list[float]) -> list[str]:
    """deg000, deg030, deg-30, deg022.5: the class folder names of these angles."""
    return [angle_class(a) for a in angles]


def dataset_parser(description: str, angles: str) -> argparse.ArgumentParser:
    """The options both demo generators take; `angles` says what the angle is measured from."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per recording")
    parser.add_argument("--seqs", type=int, default=9, help="recordings per class, material and frequency")
    parser.add_argument("--angles", nargs="+", type=float, default=[class_angle(c) for c in config.CLASSES],
                        help=f"{angles} in degrees, one class each (default: 0 36 72 108 144 180)")
    parser.add_argument("--frequencies", nargs="+", default=config.FREQUENCIES,
                        help="tone frequencies, each <N>hz (default: %(default)s)")
    return parser


def check_dataset_args(parser: argparse.ArgumentParser, args: argparse.Namespace, oversampling: int) -> None:
    """A parser error unless the options make a dataset: sample rate above `oversampling` × the highest tone."""
    if any(frequency_hz(f) is None for f in args.frequencies):
        parser.error("--frequencies: each must be <N>hz, e.g. 250hz")
    if len(set(args.angles)) != len(args.angles):
        parser.error("--angles: each angle once")
    if args.sample_rate < oversampling * max(map(frequency_hz, args.frequencies)) or args.duration <= 0 \
            or args.seqs < 1:
        parser.error(f"need --sample-rate above {oversampling}x the highest tone, --duration > 0 and --seqs >= 1")


def main(argv: list[str] | None = None) -> None:
    parser = dataset_parser(__doc__.splitlines()[0], "source angles")
    parser.add_argument("--materials", nargs="+", default=config.MATERIALS, choices=config.MATERIALS)
    parser.add_argument("--mislabel", type=int, default=0,
                        help="record K recordings of each material and frequency at another class's angle, written "
                             f"as their folder's class; {MISLABELLED} lists them (default: 0)")
    args = parser.parse_args(argv)
    check_dataset_args(parser, args, 8)
    if not 0 <= args.mislabel <= len(args.angles) * args.seqs or len(args.angles) < 2 and args.mislabel:
        parser.error("--mislabel: between 0 and the recordings of one material and frequency (two classes at least)")
    out = generate(args.out, args.sample_rate, args.duration, args.seqs, class_names(args.angles),
                   args.materials, args.frequencies, args.mislabel)
    print(f"Wrote the demo dataset to {out}")


if __name__ == "__main__":
    main()
