"""Run `python -m chatapp ARGS` from this worktree only.

The environment has /work/main installed in editable mode; its import hook would supply
modules this branch does not have (chatapp.cli.chat from main). Dropping that hook makes
the subprocess see exactly this tree, as `python -m chatapp` does once merged.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.argv = ["chatapp", *sys.argv[1:]]
runpy.run_module("chatapp", run_name="__main__", alter_sys=True)
