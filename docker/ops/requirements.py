"""Print the requirements of pyproject.toml, one per line: the runtime dependencies plus the
optional extras named in the comma-separated arguments that exist (unknown names are ignored).

    python requirements.py all > requirements.txt

Used by docker/ops/Dockerfile so the dependency layer depends on pyproject.toml alone.
"""

import re
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
extras = project.get("optional-dependencies", {})
wanted = [name.strip() for arg in sys.argv[1:] for name in arg.split(",") if name.strip()]
SELF = re.compile(rf"^{re.escape(project['name'])}\[(?P<names>[^\]]*)\]$")


def expand(names: list[str], seen: set[str]) -> list[str]:
    """The requirements of these extras; `tasklets-ops[a,b]` inside an extra names others."""
    found: list[str] = []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        for requirement in extras.get(name, []):
            if match := SELF.match(requirement.replace(" ", "")):
                found += expand(match["names"].split(","), seen)
            else:
                found.append(requirement)
    return found


requirements = list(project.get("dependencies", [])) + expand(wanted, set())
print("\n".join(requirements))
