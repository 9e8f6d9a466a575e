"""`uvicorn api.main:app`: the app with settings from the environment (and `.env`).

Unusable settings (e.g. APP_ENV=production without a real SECRET_KEY) stop the process at
import with one line and exit code 1, so the server refuses to start.
"""

from __future__ import annotations

import sys

from api.app import create_app
from api.config import load_api_settings
from ops.core.errors import OpsError

try:
    app = create_app(load_api_settings())
except OpsError as exc:
    sys.stderr.write(f"❌ {exc.message}\n" + (f"💡 {exc.hint}\n" if exc.hint else ""))
    raise SystemExit(1) from None
