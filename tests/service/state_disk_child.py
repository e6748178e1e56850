"""A new process for tests/service/test_state_disk_real.py: load SmolLM2 through the
chat service, send one question at temperature 0, print what the answer was made of.

usage: state_disk_child.py MODEL CONVERSATION_ID QUESTION warm|cold
(warm: KV states on disk are used; cold: load_request(keep_states=False)). CHATAPP_HOME
says where the database and the cache folder are."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this worktree's chatapp
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.paths import app_paths
from chatapp.service import ChatService, TurnOptions
from chatapp.service.events import TurnFinished

OPTS = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=40, seed=3))


def main() -> None:
    model, conv, question, mode = sys.argv[1:5]
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings)
    service = ChatService(paths.database, settings)
    try:
        request = service.load_request(
            ModelRef.local(model), n_threads=2, keep_states=mode == "warm"
        )
        service.load(request).result(300)
        done = service.send(conv, question, options=OPTS).result(300)
        assert isinstance(done, TurnFinished), done
        mid = done.message.id
        trace = service.read(lambda s: s.token_trace(mid)).result()
        prompt = service.read(lambda s: s.prompt_tokens(mid)).result()
        receipt = done.message.meta["receipt"]
    finally:
        service.shutdown()
    print(
        json.dumps(
            {
                "tokens": trace.token_ids if trace is not None else None,
                "text": done.message.content,
                "prompt": prompt,
                "receipt": receipt,
            }
        )
    )


if __name__ == "__main__":
    main()
