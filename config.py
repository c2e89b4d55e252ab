"""Project defaults. Importing this module only defines constants."""

CLASSES = ["deg000", "deg036", "deg072", "deg108", "deg144", "deg180"]
MATERIALS = ["plastic", "box"]
FREQUENCIES = ["500hz", "1000hz", "3000hz"]
SELECTED_SEQS = [f"{i:02d}" for i in range(9)]

DATA_ROOT = "data"
DEMO_DATA_ROOT = "demo_data"
DEMO_DATA_ROOTS = {"synthetic": DEMO_DATA_ROOT, "room": "demo_room_data"}  # --demo KIND
SAVE_DIR = "saved_models"
MATERIAL = "plastic"

N_FFT = 2048
HOP_LENGTH = 256

EPOCHS = 30
CHECKPOINT_INTERVAL = 5
SEED = 42
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MARGIN = 10.0
TRAIN_FRACTION = 0.7

GHM_BINS = 10
GHM_ALPHA = 0.75
GHM_MOMENTUM = 0.0
GHM_TEMPERATURE_PER_MARGIN = 0.25  # default temperature = margin / 4; README "Losses" has the evidence
GHM_MAX_WEIGHT = 5.0  # README "Losses": binds on lone-pair batches only
