"""What follows every training step: the GHM statistics, --tensorboard's step figures and the summary's
heartbeat."""

import torch

from audio_data.loading import RunData
from config import RunConfig
from training.ghm_recorder import GHMStatsRecorder
from training.loop import Step, Training
from utils import distributed
from utils.run_paths import RunPaths
from utils.run_summary import Heartbeat
from utils.tensorboard_log import TensorBoardLog


class BatchHooks:
    """`on_batch` of the training loop; the loop sets `epoch` before each epoch. Only the main process writes."""

    def __init__(self, cfg: RunConfig, t: Training, data: RunData, run: RunPaths, heartbeat: Heartbeat | None,
                 resumed_epoch: int):
        main_process = distributed.is_main()
        self.t, self.heartbeat, self.epoch = t, heartbeat, 0
        self.board = (TensorBoardLog(run.tensorboard, len(data.train_loader), resumed_epoch)
                      if cfg.run.tensorboard and main_process else None)
        self.recorder = (GHMStatsRecorder(t.losses, cfg.loss.type, cfg.loss.stats_batches,
                                          data.recordings, run, self.board and self.board.ghm)
                         if t.losses.ghm else None)

    def __call__(self, batch: int, batches: int, step: Step, index1: torch.Tensor, index2: torch.Tensor) -> None:
        if self.recorder is not None:
            self.recorder.epoch = self.epoch
            self.recorder(batch, batches, step, index1, index2)
        if self.board is not None:
            self.board.step(self.epoch, batch, step.loss, step.correct / len(step.target),
                            self.t.optimizer.param_groups[0]["lr"])
        if self.heartbeat is not None:
            self.heartbeat()

    def end_epoch(self, train: dict, val: dict) -> None:
        if self.board is not None:
            self.board.epoch(self.epoch, train, val, self.t.optimizer.param_groups[0]["lr"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
