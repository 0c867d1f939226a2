"""Configuration sections, one model per stage; the root lives in ``rfdetr_trainer.settings``."""

from rfdetr_trainer.schemas.data import CvatConfig, DataConfig, LocalConfig, MinioConfig, SplitConfig
from rfdetr_trainer.schemas.experiment import ClearMLConfig, ExperimentConfig, LoggingConfig
from rfdetr_trainer.schemas.export import ExportConfig
from rfdetr_trainer.schemas.model import MODEL_TYPES, ModelConfig
from rfdetr_trainer.schemas.training import TrainingConfig
from rfdetr_trainer.schemas.validation import ValidationConfig

__all__ = [
    "MODEL_TYPES",
    "ClearMLConfig",
    "CvatConfig",
    "DataConfig",
    "ExperimentConfig",
    "ExportConfig",
    "LocalConfig",
    "LoggingConfig",
    "MinioConfig",
    "ModelConfig",
    "SplitConfig",
    "TrainingConfig",
    "ValidationConfig",
]
