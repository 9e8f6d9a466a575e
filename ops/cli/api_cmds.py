"""`tasklets-db serve`: run the reference REST API (api.main:app) under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.cli.app import app, state


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (dev).")]
    = False,
) -> None:
    """Serve the Tasklets REST API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.app import create_app
    from api.config import load_api_settings

    # Settings are checked here (production refuses a missing SECRET_KEY) before listening;
    # loading them also exports the --env-file values to the reloader's worker process.
    api_settings = load_api_settings(state.env_file)
    app = create_app(api_settings)  # refuses a weak key for a production database first
    typer.echo(f"🚀 Serving the Tasklets API on http://{host}:{port} "
               f"(docs: http://{host}:{port}/docs, database {api_settings.ops.masked_url})")
    if reload:
        uvicorn.run("api.main:app", host=host, port=port, reload=True)
    else:
        uvicorn.run(app, host=host, port=port)
