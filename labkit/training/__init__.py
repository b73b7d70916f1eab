"""labkit.training: the train loop, callbacks, optimizers and schedules (and comparing them), checkpoints, LoRA (PEFT), distributed."""

from labkit.lazy import lazy_exports

_EXPORTS = {
    "train": "trainer",
    "Trainer": "trainer",
    "History": "history",
    "TrainingDivergedError": "history",
    "Callback": "callbacks",
    "ProgressBar": "callbacks",
    "CallbackList": "callbacks",
    "EarlyStopping": "callbacks",
    "LambdaCallback": "callbacks",
    "make_optimizer": "optim",
    "make_schedule": "optim",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "lr_find": "lr_finder",
    "resolve_device": "device",
    "peak_flops": "device",
    "flops_per_token": "device",
    "LRFinderResult": "lr_finder",
    "lora": "lora",
    "trainable_parameters": "lora",
    "save_adapter": "lora",
    "load_adapter": "lora",
    "is_lora_wrapped": "lora",
    "lora_targets": "lora",
    "lora_factors": "lora",
    "compare_optimizers": "compare",
    "OptimizerComparison": "compare",
    "OptimizerRun": "compare",
    "DEFAULT_OPTIMIZERS": "compare",
    "StepClock": "compare",
    "MomentRecorder": "moments",
    "MomentSnapshot": "moments",
    "hand_adam_step": "moments",
    "class_weights": "imbalance",
    "WeightedCrossEntropy": "imbalance",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
