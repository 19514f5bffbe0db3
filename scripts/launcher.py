"""Write the `mini` command: a launcher that starts Python with -S (scripts/provision.sh runs this).

    python scripts/launcher.py PATH      # PATH: where to write it (provision.sh: .venv/bin/mini)

pip's entry-point script starts the interpreter the usual way, and the usual way imports `site`:
it reads every .pth file in every site-packages directory and runs the lines that start with
`import`. That costs about 3 ms on a plain Debian machine, and far more where a .pth imports a
package (on the project machine a sandbox's .pth imports certifi: +20 ms at every start, two
thirds of the Python floor). Nothing of that is mini's.

This launcher runs `python -S`: no `site`. The directories `site` would have added (the
virtualenv's site-packages, the editable install's path, Debian's dist-packages for
python3-nftables) are computed here, once, by the interpreter that runs this script with its
`site`, and written into the launcher as a list. The launcher appends them to `sys.path` in the
same order, so imports resolve exactly as before. If the virtualenv changes (new packages in
new directories), run `make setup` again, which writes the launcher again.
"""

from __future__ import annotations

import os
import subprocess
import sys

TEMPLATE = '''#!{python} -S
"""`mini`, written by scripts/launcher.py: python -S skips `site` (and the .pth files it would
run at every start); the directories site would add are these, in its order."""
import sys
sys.path.extend({paths!r})
from mini_runtime.cli import command
command()
'''


def site_paths(python: str) -> list[str]:
    """What `site` adds to sys.path for `python`: its full path minus its path under -S."""
    show = "import sys, json; print(json.dumps(sys.path[1:]))"
    full, bare = (subprocess.run([python, *flags, "-c", show], capture_output=True, text=True,
                                 check=True, env={k: v for k, v in os.environ.items()
                                                  if k != "PYTHONPATH"}).stdout
                  for flags in ([], ["-S"]))
    import json

    without = set(json.loads(bare))
    return [p for p in json.loads(full) if p not in without]


def write(target: str, python: str = sys.executable) -> None:
    text = TEMPLATE.format(python=python, paths=site_paths(python))
    tmp = f"{target}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/launcher.py PATH")
    write(sys.argv[1])
