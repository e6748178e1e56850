"""`chatapp serve`: the loaded model as an OpenAI-compatible API on this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chatapp.cli.common import add_gpu_layers_flag, add_speculation_flags, model_ref
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.paths import app_paths
from chatapp.service import ChatService


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a model as an OpenAI-compatible API (/v1/chat/completions ...)"
    )
    p.add_argument(
        "-m", "--model", metavar="PATH", help="a .gguf file (default: the default model)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free one)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("CHATAPP_API_KEY", ""),
        help="require 'Authorization: Bearer KEY' (needed off loopback; default $CHATAPP_API_KEY)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeatable; CORS is off by default)",
    )
    p.add_argument(
        "--record", action="store_true", help="save each request and answer as a conversation"
    )
    p.add_argument(
        "--fetch-image-urls",
        action="store_true",
        help="fetch http(s) image URLs in messages (default: only data: URLs are taken)",
    )
    p.add_argument(
        "--stream-interval-ms",
        type=int,
        default=20,
        metavar="MS",
        help="shortest time between two streamed events; faster tokens are sent together "
        "(default 20; 0: one event per token)",
    )
    p.add_argument(
        "--send-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="cancel a streamed answer whose client takes no event for S seconds (default 10)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name clients reach this server by, besides loopback and --host "
        "(repeatable; other Host headers are refused)",
    )
    p.add_argument(
        "--embedding-model",
        metavar="PATH",
        default="",
        help="a GGUF embedding model to serve at /v1/embeddings",
    )
    p.add_argument("--context", type=int, default=None, help="context limit in tokens")
    p.add_argument("--threads", type=int, default=None)
    add_gpu_layers_flag(p)
    add_speculation_flags(p)
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from chatapp.server import ServerConfig, check_binding, create_app
    from chatapp.server.run import bind, serve_forever, url_of

    check_binding(args.host, args.api_key)
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings)
    ref = model_ref(args.model, settings)
    # the id is the file's name as the user gave it (a symlink keeps its own name)
    named = (
        "" if not ref.is_local else (args.model or settings.default_model or settings.last_model)
    )
    embedding_model = ""
    if args.embedding_model:
        if not Path(args.embedding_model).expanduser().is_file():
            raise UserError(f"No such embedding model file: {args.embedding_model}")
        embedding_model = str(Path(args.embedding_model).expanduser().resolve())
    sock = bind(args.host, args.port)  # before loading: a busy port fails fast
    service = ChatService(paths.database, settings)
    try:
        loaded = service.load(
            service.load_request(
                ref,
                context_limit=args.context,
                n_threads=args.threads,
                n_gpu_layers=args.gpu_layers,
                speculative=args.speculative,
                draft_model=args.draft_model,
            )
        ).result()
        config = ServerConfig(
            api_key=args.api_key,
            cors_origins=tuple(args.cors_origin),
            record=args.record,
            fetch_image_urls=args.fetch_image_urls,
            stream_interval_ms=max(0, args.stream_interval_ms),
            send_timeout=max(0.1, args.send_timeout),
            hosts=(args.host, *args.allowed_host),
            named_model=str(Path(named).expanduser()) if named else "",
            embedding_model=embedding_model,
        )
        app = create_app(service, config)
        from chatapp.server import model_id

        print(
            f"Serving {loaded.ref.label} as '{model_id(service, config.named_model)}' "
            f"on {url_of(sock)}/v1"
            + (" (API key required)" if args.api_key else "")
            + (" · recording requests as conversations" if args.record else ""),
            file=sys.stderr,
            flush=True,
        )
        try:
            serve_forever(app, sock)
        finally:
            app.state.embeddings.close()
    finally:
        service.shutdown()
        sock.close()
    return 0
