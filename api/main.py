"""`uvicorn api.main:app`: the app with settings from the environment (and `.env`).

Importing this module raises OpsError when the settings are unusable, e.g. APP_ENV=production
without a real SECRET_KEY, so the server refuses to start.
"""

from __future__ import annotations

from api.app import create_app
from api.config import load_api_settings

app = create_app(load_api_settings())
