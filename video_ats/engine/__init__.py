"""Training, multi-view evaluation and the distributed helpers they share."""

from .evaluator import evaluate
from .report import format_results
from .tester import test
from .trainer import train

__all__ = ["evaluate", "format_results", "test", "train"]
