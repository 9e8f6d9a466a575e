"""The reference Tasklets REST API (FastAPI) over the same schema and settings as `ops`.

`api.app.create_app(ApiSettings)` builds the app; `api.main:app` is the module-level app
for `uvicorn api.main:app` (settings read from the environment).
"""
