"""Print the requirements of pyproject.toml, one per line: the runtime dependencies plus the
optional extras named in the comma-separated arguments that exist (unknown names are ignored).

    python requirements.py api > requirements.txt

Used by docker/ops/Dockerfile so the dependency layer depends on pyproject.toml alone.
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
extras = project.get("optional-dependencies", {})
wanted = [name.strip() for arg in sys.argv[1:] for name in arg.split(",") if name.strip()]
requirements = list(project.get("dependencies", []))
for name in wanted:
    requirements += extras.get(name, [])
print("\n".join(requirements))
