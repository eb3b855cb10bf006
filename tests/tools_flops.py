"""tools/flops.py imported as a module for the tests."""

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "tools" / "flops.py"
_spec = importlib.util.spec_from_file_location("tools_flops_module", _path)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
main = _module.main
