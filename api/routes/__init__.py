"""Route modules, one per resource; `api.app.create_app` includes them all under /api."""
