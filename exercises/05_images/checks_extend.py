"""The extend part of exercise 05 (12 of 20 points): `mini image squash SOURCE TARGET`, which the
reference runtime has as a command but leaves to your hook (`squash_layer`). Graded black-box:
images with deletions and opaque directories (crafted layer tars, and `mini commit` of a real
container), squashed by `mini`, then run: the files a container sees, and one layer."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from exercises.grading import Chapter, Context
from mini_runtime.image.store import Store

SECTION = "§ Whiteouts: deleting in a layer"


def _last(result: Any) -> str:
    return (result.stderr.strip().splitlines() or [""])[-1]


def _squash(ctx: Context, root: Any, source: str, target: str) -> None:
    """`mini image squash`: exit 0, the new image's id, one layer with no whiteout in it."""
    result = ctx.mini("image", "squash", source, target, timeout=60)
    ctx.expect(result.returncode == 0, f"`mini image squash {source} {target}` (exit 0)",
               f"exit {result.returncode}, {_last(result)[:220]!r}")
    store = Store(root)
    image = store.get(target)
    ctx.expect(result.stdout.strip() == image.id, f"`mini image squash` to print the new image's id {image.id}",
               repr(result.stdout.strip()[:80]))
    ctx.expect(len(image.layers) == 1, f"{target} to have one layer", f"{len(image.layers)} layers")
    names = tarfile.open(fileobj=io.BytesIO(store.layout.read_blob(image.layers[0]["digest"]))).getnames()
    marks = [n for n in names if ".wh." in n]
    ctx.expect(not marks, "no whiteout in the squashed layer (nothing is below it to hide)", repr(marks[:3]))


def _present(paths: list[str]) -> str:
    return " ".join(f"if [ -e {p} ]; then echo yes; else echo no; fi;" for p in paths)


def register(chapter: Chapter) -> None:
    check = chapter.check
    from importlib import import_module

    base = import_module(f"exercises_checks_{chapter.number}")  # checks.py: its image helpers
    helpers = base.HELPERS
    token, image, loaded = helpers["token"], helpers["image"], helpers["run"]

    @check("5.10", "mini image squash: whiteouts and opaque directories applied, one layer", points=7,
           section=SECTION, plug=("squash_layer",), part="extend", timeout=120)
    def squash(ctx: Context) -> None:
        root = ctx.private_state_root()
        a, b1, b2, old, new, keep, env = (token(ctx) for _ in range(7))
        source = f"layers{token(ctx, 4)}:1"
        made = image(root, source, [
            {"data/a": b"a\n", "data/b": f"{b1}\n".encode(), "opq/old1": old.encode(), "opq/old2": old.encode(),
             "gone/x": b"x\n", "keep/x": f"{keep}\n".encode()},
            {"data/.wh.a": b"", "data/b": f"{b2}\n".encode(), "opq/.wh..wh..opq": b"", "opq/new": f"{new}\n".encode(),
             ".wh.gone": b"", "fresh/f": b"f\n"}])
        config = made.config
        target = f"flat{token(ctx, 4)}:1"
        _squash(ctx, root, source, target)
        gone, kept = ["/data/a", "/opq/old1", "/opq/old2", "/gone"], ["/data/b", "/opq/new", "/fresh/f", "/keep/x"]
        script = f"{_present(gone + kept)} cat /data/b /opq/new /keep/x; ls /opq"
        out = loaded(ctx, "run", "--rm", target, "sh", "-c", script, what=f"a container of {target}").split()
        want = ["no"] * len(gone) + ["yes"] * len(kept) + [b2, new, keep, "new"]
        ctx.expect(out == want, f"{target}: {', '.join(gone)} absent, {', '.join(kept)} present, /data/b of the "
                   f"top layer, /opq holding only new", repr(out))
        squashed = Store(root).get(target).config
        ctx.expect(squashed.get("config") == config.get("config"), f"{target} to keep {source}'s config "
                   "(Cmd, Env, ...)", repr(squashed.get("config"))[:200])
        original = loaded(ctx, "run", "--rm", source, "sh", "-c", _present(["/gone/x", "/fresh/f"]),
                          what=f"{source} to run still").split()
        ctx.expect(len(Store(root).get(source).layers) == 3 and original == ["no", "yes"],
                   f"{source} unchanged: 3 layers, the same files", repr(original))

    @check("5.11", "mini image squash of a committed container: its deletions and its opaque /usr", points=5,
           section=SECTION, plug=("squash_layer",), part="extend", timeout=120)
    def squash_commit(ctx: Context) -> None:
        root = ctx.private_state_root()
        applet, file, content = helpers["applet"](ctx), f"f{token(ctx, 6)}", token(ctx)
        name, snap, flat = f"c{token(ctx)}", f"snap{token(ctx, 4)}:1", f"flat{token(ctx, 4)}:1"
        loaded(ctx, "run", "--name", name, "busybox", "sh", "-c",
               f"rm /{applet} && rm -rf /usr && mkdir /usr && echo {content} > /usr/{file}")
        committed = ctx.mini("commit", name, snap)
        ctx.expect(committed.returncode == 0, f"`mini commit {name} {snap}` (exit 0)", _last(committed))
        _squash(ctx, root, snap, flat)
        out = loaded(ctx, "run", "--rm", flat, "sh", "-c", f"{_present(['/' + applet, '/bin/busybox'])} ls /usr; "
                     f"cat /usr/{file}", what=f"a container of {flat}").split()
        ctx.expect(out == ["no", "yes", file, content], f"/{applet} absent, /bin/busybox present, /usr holding "
                   f"only {file} ({content}): the container's rm -rf /usr then mkdir made it opaque", repr(out))
        missing = ctx.mini("image", "squash", f"nosuch{token(ctx, 4)}:1", f"x{token(ctx, 4)}:1")
        images = ctx.mini("images", "-q").stdout.split()
        ctx.expect(missing.returncode == 1 and _last(missing).startswith("mini: ") and len(images) == 3,
                   "squashing an image that does not exist: exit 1, one line, no new image",
                   f"exit {missing.returncode}, {_last(missing)[:150]!r}, {len(images)} images")
