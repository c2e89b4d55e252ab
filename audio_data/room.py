"""A second demo dataset, simulated with the image-source method: `python -m audio_data.room --out DIR`.

Unlike audio_data/synthetic.py, which models what an angle does to a recording by hand, this one leaves it to room
acoustics (pyroomacoustics' shoebox image-source model). In a room of the material's kind a cardioid microphone
(axis along +x, 1.4 m high) stays put; an omnidirectional loudspeaker plays the tone at the class angle θ on a
circle around it (azimuth θ from the microphone's axis, in the horizontal plane). What makes direction audible is
physics: the cardioid takes the direct sound with gain (1 + cos θ) / 2 and every wall reflection with the gain of
its own direction, so the direct-to-reverberant ratio and the level fall with θ. In the reverberant room the
steady tone is a sum of many reflections, so its level at the microphone also depends on where exactly the
loudspeaker stands (a standing-wave pattern): that is what makes that room hard.

Rooms (`ROOMS`): "plastic" a reverberant 6 × 4.5 × 3 m room (RT60 0.6 s, loudspeaker 1 m away), "box" a damped
4 × 3.2 × 2.6 m room (RT60 0.1 s, 0.8 m away); wall absorption from Sabine's formula, the same at every
frequency. Each take jitters the loudspeaker (±4° azimuth, ±5 % distance, ±5 cm height, ±1 dB level) and the
background noise (pink, -60 ± 2 dBFS); the microphone and the rooms stay fixed. A take's room impulse response is
shared by its frequencies (the same placement played with each tone). Same layout and names as real data.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

import config
from audio_data.classes import class_angle, frequency_hz
from audio_data.naming import recording_name
from audio_data.synthetic import MARKER, check_dataset_args, class_names, convolve, dataset_parser, seed_key, tone
from utils import extras
from utils.errors import InputError
from utils.io_utils import atomic_path, save_json

SEED = 20261126
MIC_HEIGHT = 1.4
NOISE_DBFS = -60.0
SOURCE_GAIN = 0.25  # the tone's amplitude 1 m in front of the loudspeaker, in free field: -12 dBFS
PEAK_LIMIT = 0.99  # a take louder than this is an error (a room or gain that clips), never silently clipped


@dataclass(frozen=True)
class Room:
    size: tuple[float, float, float]  # metres
    rt60: float  # seconds
    distance: float  # loudspeaker to microphone, metres
    mic_xy: tuple[float, float]  # share of the room's length and width
    max_order: int  # image sources up to this order: the higher ones change the steady level by < 0.1 dB


ROOMS = {"plastic": Room((6.0, 4.5, 3.0), 0.6, 1.0, (0.42, 0.45), 40),
         "box": Room((4.0, 3.2, 2.6), 0.1, 0.8, (0.5, 0.5), 30)}


def placement(room: Room, angle: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(microphone, loudspeaker) positions in metres for one take at `angle` degrees."""
    mic = np.array([room.size[0] * room.mic_xy[0], room.size[1] * room.mic_xy[1], MIC_HEIGHT])
    azimuth = np.deg2rad(angle + rng.uniform(-4.0, 4.0))
    distance = room.distance * rng.uniform(0.95, 1.05)
    source = mic + np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(-0.05, 0.05)])
    return mic, source


def impulse_response(room: Room, mic: np.ndarray, source: np.ndarray, sample_rate: int) -> np.ndarray:
    """The room's impulse response from `source` to the cardioid at `mic` (image-source method)."""
    import pyroomacoustics as pra
    from pyroomacoustics.directivities import CardioidFamily, DirectionVector

    absorption, _ = pra.inverse_sabine(room.rt60, list(room.size))
    shoebox = pra.ShoeBox(list(room.size), fs=sample_rate, materials=pra.Material(absorption),
                          max_order=room.max_order)
    cardioid = CardioidFamily(orientation=DirectionVector(azimuth=0, colatitude=90, degrees=True), p=0.5, gain=1.0)
    shoebox.add_microphone(mic, directivity=cardioid)
    shoebox.add_source(source)
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum (no DC)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(f[1:])
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise ** 2))


def take_rng(class_name: str, material: str, seq: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([SEED, seed_key(class_name, config.CLASSES, class_angle(class_name)),
                                  config.MATERIALS.index(material), seq, *more])


def record(rir: np.ndarray, hz: float, rng: np.random.Generator, sample_rate: int, duration: float) -> np.ndarray:
    """One take: the tone (on from about 10 % to 75 % of the recording) through the room, plus noise."""
    n = int(round(duration * sample_rate))
    start = int((0.1 + 0.02 * rng.random()) * n)
    source = tone(n, sample_rate, hz, start, int(0.75 * n), 2 * np.pi * rng.random())
    level = SOURCE_GAIN * 10 ** (rng.normal(0.0, 1.0) / 20)  # pyroomacoustics' direct path has gain 1/r
    noise = 10 ** ((NOISE_DBFS + rng.normal(0.0, 2.0)) / 20) / np.sqrt(2) * pink_noise(n, rng)
    return level * convolve(source, rir) + noise


def generate(out: str | Path, sample_rate: int = 48000, duration: float = 2.0, seqs: int = 9,
             classes: list[str] = config.CLASSES, materials: list[str] = config.MATERIALS,
             frequencies: list[str] = config.FREQUENCIES) -> Path:
    """Write the room dataset (16-bit WAV) under `out` and its marker file."""
    extras.require("room", "the room dataset")
    out = Path(out)
    for material in materials:
        room = ROOMS[material]
        for class_name in classes:
            for seq in range(seqs):
                mic, source = placement(room, class_angle(class_name), take_rng(class_name, material, seq))
                rir = impulse_response(room, mic, source, sample_rate)
                for frequency in frequencies:
                    hz = frequency_hz(frequency)
                    rng = take_rng(class_name, material, seq, seed_key(frequency, config.FREQUENCIES, hz))
                    samples = record(rir, hz, rng, sample_rate, duration)
                    name = recording_name(material, class_name, frequency, f"{seq:02d}")
                    if np.abs(samples).max() > PEAK_LIMIT:
                        raise ValueError(f"{name}: the take peaks at {np.abs(samples).max():.2f} full scale")
                    with atomic_path(out / class_name / material / name) as tmp:
                        sf.write(tmp, samples, sample_rate, subtype="PCM_16", format="WAV")
    save_json(describe(sample_rate, duration, seqs, classes, materials, frequencies), out / MARKER)
    return out


def describe(sample_rate: int, duration: float, seqs: int, classes: list[str], materials: list[str],
             frequencies: list[str]) -> dict:
    return {"kind": "room", "seed": SEED, "sample_rate": sample_rate, "duration": duration, "seqs": seqs,
            "classes": list(classes), "materials": list(materials), "frequencies": list(frequencies)}


DEFAULT = describe(48000, 2.0, 9, config.CLASSES, config.MATERIALS, config.FREQUENCIES)


def main(argv: list[str] | None = None) -> None:
    parser = dataset_parser(__doc__.splitlines()[0], "loudspeaker angles from the microphone's axis")
    parser.add_argument("--materials", nargs="+", default=list(ROOMS), choices=list(ROOMS),
                        help="plastic: the reverberant room, box: the damped one (default: both)")
    args = parser.parse_args(argv)
    check_dataset_args(parser, args, 4)
    try:
        out = generate(args.out, args.sample_rate, args.duration, args.seqs, class_names(args.angles),
                       args.materials, args.frequencies)
    except InputError as exc:
        sys.exit(f"error: {exc}")
    print(f"Wrote the room dataset to {out}")


if __name__ == "__main__":
    main()
