"""Training: the Trainer (BPTT, SLTT, SLTT-K, local rules), losses, checkpoints."""
from .checkpoint import load, load_checkpoint, save_checkpoint
from .layer_calls import clamp_parameters, set_epoch
from .losses import LOSSES, SequenceLoss, get_loss
from .trainer import MODES, Trainer, confusion_matrix, detach_state

__all__ = ["Trainer", "MODES", "LOSSES", "SequenceLoss", "get_loss", "load", "load_checkpoint", "save_checkpoint",
           "confusion_matrix", "detach_state", "set_epoch", "clamp_parameters"]
