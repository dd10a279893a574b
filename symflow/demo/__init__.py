"""``symflow demo``: simulate → discover (HNN) and SympFlow from the same file → diagnose → report.

See :mod:`symflow.demo.run` for the stages, :mod:`symflow.demo.settings` for their sizes and
:mod:`symflow.demo.report` for the report's keys.
"""

from .report import DEMO_KEYS, validate_demo_report
from .run import DemoResult, run_demo, stage_commands
from .settings import FULL, QUICK, DemoSettings

__all__ = [
    "DEMO_KEYS",
    "FULL",
    "QUICK",
    "DemoResult",
    "DemoSettings",
    "run_demo",
    "stage_commands",
    "validate_demo_report",
]
