"""The graded checks of chapter 05. They plug your functions into the real runtime and run real
containers of images made for the check (with random file names and contents), or call your
functions on real layer directories. Each check has a state root (MINI_ROOT) of its own on a
tmpfs: the machine's image store is left alone. These are the rebuild part (8 of 20 points);
the extend part, `mini image squash`, is in checks_extend.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

from exercises.grading import Chapter, CheckFailed, Context
from exercises.why import errno_of, errnos_in_child, expect_predictions
from mini_runtime import container, overlay, syscalls
from mini_runtime.errors import MiniError
from mini_runtime.image import archive, busybox
from mini_runtime.image.layout import sha256_digest
from mini_runtime.image.store import Image, Store

CHAPTER = Chapter(number="05", slug="images", module="mini_runtime.overlay", learner_file="overlay.py",
                  given=("OPAQUE_XATTR", "PAGE", "PLAIN_UPPER", "Overlay", "is_opaque", "make_opaque"))
check = CHAPTER.check
# Applets the checks' shell scripts use (sh runs them; the rest are ash builtins or used below).
USED = {"bin/sh", "bin/cat", "bin/echo", "bin/test", "bin/[", "bin/grep", "bin/ls", "bin/rm", "bin/mkdir"}


# --- helpers ---------------------------------------------------------------------------------

def _token(ctx: Context, digits: int = 8) -> str:
    return "".join(ctx.rng.choice("0123456789abcdef") for _ in range(digits))


def _layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar: each path a regular file (a `.wh.<name>` one is a whiteout)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _image(root: Path, name: str, layers: list[dict[str, bytes]]) -> Image:
    """busybox plus the given layers (bottom first), stored (and unpacked, by the reference
    runtime) in the check's own state root."""
    tars = [busybox.build_layer(), *map(_layer, layers)]
    config = busybox.image_config(sha256_digest(tars[0]), 0)
    config["rootfs"]["diff_ids"] = [sha256_digest(t) for t in tars]
    return Store(root).add_image(name, tars, config)


def _loaded(ctx: Context, root: Path, name: str, layers: list[dict[str, bytes]]) -> Image:
    """The same image, brought in with `mini load` (your functions plugged in): `load`
    unpacks every layer, and so its whiteouts are made by the runtime under test."""
    build = root / f"build-{_token(ctx, 4)}"
    _image(build, name, layers)
    archive_file = root / f"{_token(ctx, 6)}.tar"
    with open(archive_file, "wb") as out:
        archive.save(Store(build), [name], out)
    shutil.rmtree(build)
    _run(ctx, "load", "-i", str(archive_file), what=f"`mini load` of an image whose top layer has .wh. entries")
    return Store(root).get(name)


def _layer_dir(root: Path, image: Image, index: int) -> Path:
    """Where a layer of the image is unpacked (index -1: the top layer)."""
    return Store(root).layers_root / image.chain_ids[index].removeprefix("sha256:") / "diff"


def _applet(ctx: Context) -> str:
    """A random busybox applet in bin/ that the checks' scripts do not need."""
    return ctx.rng.choice(sorted(a for a in busybox.applets() if a.startswith("bin/") and a not in USED))


def _tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every name under root with its mode, device number, mtime and (for a file) the digest
    of its contents (read once per inode: busybox's applets are one file with 400 names)."""
    found, digests = {}, {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_ino not in digests:
                digests[st.st_ino] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_rdev, st.st_mtime_ns,
                                                  digests.get(st.st_ino, "") if stat.S_ISREG(st.st_mode) else "")
    return found


def _out(result: Any) -> str:
    """Exit code, the start of stdout, and mini's last line on stderr (its error, if any)."""
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return f"exit {result.returncode}, {result.stdout.strip()[:100]!r} {last[:220]!r}"


def _run(ctx: Context, *args: str, timeout: float = 20.0, what: str = "the container to run") -> str:
    result = ctx.mini(*args, timeout=timeout)
    ctx.expect(result.returncode == 0, f"{what} (exit 0)", _out(result))
    return result.stdout


def _directory(name: str) -> Path:
    """The kept container's directory, containers/<id>/ (its record: container.json)."""
    return container.find(name)


def _layout(root: Path, name: str) -> overlay.Overlay:
    """A kept container's overlay, from its record (as `mini diff` and `export` find it)."""
    directory = _directory(name)
    record = json.loads((directory / "container.json").read_text())
    return overlay.of(directory, Store(root).layers_root, record["GraphDriver"]["Data"]["LowerDir"])


def _mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, superblock options) of a mount table (a mountinfo text:
    `ctx.mountinfo()` the jail's, `ctx.server.mountinfo()` the learner server's)."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, options = right.split(" ", 2)
        found.append((left.split()[4].replace("\\040", " "), fstype, options))
    return found


def _options(text: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in text.split(","))


def _expect_no_overlay_at(ctx: Context, mountinfo: str, target: Path, when: str) -> None:
    ctx.expect(not any(point == str(target) for point, _, _ in _mounts(mountinfo)),
               f"no mount at {target} {when}", "a mount is there")


# The helpers checks_extend.py uses too.
HELPERS = {"token": _token, "image": _image, "run": _run, "applet": _applet}


# --- the checks ------------------------------------------------------------------------------

@check("5.1", "prepare: upper/, work/ and rootfs/, and the container's writes land in upper/", points=0.5,
       section="§ A container's own directories", plug=("prepare",))
def prepare(ctx: Context) -> None:
    root = ctx.private_state_root()
    where = root / "scratch" / f"c{_token(ctx)}"
    where.mkdir(parents=True)
    layers_root = root / f"layers-{_token(ctx, 4)}"
    lower = [f"l/{_token(ctx, 20)}" for _ in range(ctx.rng.randrange(1, 6))]
    got = ctx.learner.prepare(where, layers_root, list(lower))
    want = overlay.Overlay(layers_root, lower, where / "upper", where / "work", where / "rootfs")
    wrong = [f for f in want._fields if getattr(got, f, None) != getattr(want, f)]
    ctx.expect(not wrong, "prepare(DIR, LAYERS_ROOT, LOWER) to return Overlay(LAYERS_ROOT, LOWER, "
               "DIR/upper, DIR/work, DIR/rootfs)",
               ", ".join(f"{f}={getattr(got, f, '(none)')}" for f in wrong)[:300])
    made = sorted(p.name for p in where.iterdir() if p.is_dir() and not p.is_symlink())
    ctx.expect({"rootfs", "upper", "work"} <= set(made), f"the directories rootfs, upper and work in {where}",
               repr(made))

    name, content, file = f"c{_token(ctx)}", _token(ctx), f"f{_token(ctx)}"
    subdir = f"d{_token(ctx, 4)}"
    _run(ctx, "run", "--name", name, "busybox", "sh", "-c",
         f"echo {content} > /{file}; mkdir /var/{subdir}; echo {content} > /var/{subdir}/{file}")
    upper = _directory(name) / "upper"
    for path in (upper / file, upper / "var" / subdir / file):
        got_text = path.read_text().strip() if path.is_file() else "(missing)"
        ctx.expect(got_text == content, f"the container's write in containers/<id>/upper/"
                   f"{path.relative_to(upper)}: {content!r}", got_text)


@check("5.2", "mount_options: lowerdir top first, upperdir, workdir: the top layer wins", points=1,
       section="§ Mounting the union", plug=("mount_options",))
def options(ctx: Context) -> None:
    base = Path(f"/var/lib/mini-{_token(ctx, 4)}")
    for _ in range(3):
        lower = [f"l/{_token(ctx, 20)}" for _ in range(ctx.rng.randrange(1, 7))]
        where = base / "containers" / _token(ctx, 12)
        layout = overlay.Overlay(base / "layers", lower, where / "upper", where / "work", where / "rootfs")
        text = ctx.learner.mount_options(layout)
        got = _options(text) if isinstance(text, str) else {}
        lowers = [str(layout.layers_root / p) for p in got.get("lowerdir", "").split(":")]  # absolute stays
        ctx.expect(lowers == [str(p) for p in layout.lower_dirs],
                   f"lowerdir to name the layers top first: {':'.join(lower)}",
                   f"lowerdir={got.get('lowerdir')}" if "lowerdir" in got else repr(text)[:200])
        ctx.expect((got.get("upperdir"), got.get("workdir")) == (str(layout.upper), str(layout.work)),
                   f"upperdir={layout.upper} and workdir={layout.work}",
                   f"upperdir={got.get('upperdir')} and workdir={got.get('workdir')}")
        plain = _options(overlay.PLAIN_UPPER)
        ctx.expect(all(got.get(k) == v for k, v in plain.items()), f"the options {overlay.PLAIN_UPPER}",
                   repr(text)[:300])

    root = ctx.private_state_root()
    top, middle, only = _token(ctx), _token(ctx), _token(ctx)
    image = _image(root, f"stack{_token(ctx, 4)}:1",
                   [{"msg": f"middle-{middle}\n".encode(), "only-middle": f"{only}\n".encode()},
                    {"msg": f"top-{top}\n".encode()}])
    out = _run(ctx, "run", "--rm", image.name, "sh", "-c", "cat /msg /only-middle; cat /etc/group")
    lines = out.split()
    ctx.expect(lines[:2] == [f"top-{top}", only] and "root:x:0:" in lines,
               f"a 3-layer image to show /msg of the top layer (top-{top}), /only-middle of the "
               f"middle one ({only}) and /etc/group of the bottom one", repr(lines[:3]))


@check("5.3", "mount: from layers_root and back, too many layers refused, 150 layers mount", points=1.5,
       section="§ Mounting the union", plug=("mount_options", "mount"), timeout=90)
def mounting(ctx: Context) -> None:
    root = ctx.private_state_root()
    layers_root = root / "own-layers"
    names = [f"l/{_token(ctx, 20)}" for _ in range(2)]  # top first
    content = _token(ctx)
    for i, name in enumerate(names):
        (layers_root / name).mkdir(parents=True)
        (layers_root / name / "same").write_text(f"{i}-{content}\n")
    (layers_root / names[1] / "bottom-only").write_text(content)
    (root / "c1").mkdir()
    layout = overlay.prepare(root / "c1", layers_root, names)
    server = ctx.server  # runs your mount(): what it mounts is in its mount table, seen from here
    here = server.cwd()
    try:
        ctx.learner.mount(layout)
    except OSError as e:
        raise CheckFailed(f"expected mount() of two existing layers to work, got {type(e).__name__}: "
                          f"{e} (working directory {server.cwd()})"[:300]) from None
    ctx.expect(server.cwd() == here, f"mount() to return in the directory it was called in, {here}",
               server.cwd())
    found = [(t, o) for point, t, o in _mounts(server.mountinfo()) if point == str(layout.merged)]
    ctx.expect(bool(found) and found[-1][0] == "overlay" and "lowerdir=" in found[-1][1],
               f"an overlay mount at {layout.merged} with lowerdir= in /proc/self/mountinfo",
               repr(found[-1:]))
    seen = [server.path(layout.merged / f).read_text().strip() if server.path(layout.merged / f).exists()
            else "(missing)" for f in ("same", "bottom-only")]
    ctx.expect(seen == [f"0-{content}", content], f"the union: same from the top layer "
               f"(0-{content}), bottom-only from the bottom one", repr(seen))

    (root / "c2").mkdir()
    broken = overlay.prepare(root / "c2", layers_root, [names[0], f"l/missing-{_token(ctx)}"])
    try:
        ctx.learner.mount(broken)
    except OSError:
        pass
    else:
        raise CheckFailed("expected mount() of a missing layer directory to raise the kernel's "
                          "OSError, got no error")
    ctx.expect(server.cwd() == here, f"mount() to return to {here} even when mount(2) fails",
               f"still in {server.cwd()}")
    _expect_no_overlay_at(ctx, server.mountinfo(), broken.merged, "after a failed mount")

    count = ctx.rng.randrange(180, 400)
    (root / "c3").mkdir()
    tall = overlay.prepare(root / "c3", layers_root, [f"l/{_token(ctx, 20)}" for _ in range(count)])
    try:
        ctx.learner.mount(tall)
    except MiniError as e:
        ctx.expect(str(count) in str(e), f"the error to say how many layers the image has ({count})",
                   repr(str(e)))
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"expected MiniError for {count} layers (options longer than a page, "
                          f"{overlay.PAGE} bytes), got {type(e).__name__}: {e}"[:300]) from None
    else:
        raise CheckFailed(f"expected MiniError for {count} layers (options longer than a page), "
                          "got no error")

    height = ctx.rng.randrange(130, 151)
    marks = [_token(ctx, 6) for _ in range(height)]
    image = _image(root, f"tall{_token(ctx, 4)}:1", [{f"layers/{i}": f"{m}\n".encode()}
                                                     for i, m in enumerate(marks)])
    out = _run(ctx, "run", "--rm", image.name, "sh", "-c",
               f"ls /layers | wc -l; cat /layers/{height - 1}; grep -c ' / / .* - overlay .*lowerdir=' "
               "/proc/self/mountinfo", timeout=75, what=f"a {height + 1}-layer image to run")
    ctx.expect(out.split() == [str(height), marks[-1], "1"],
               f"{height} files in /layers, the last one's {marks[-1]!r}, and / an overlay mount "
               "with lowerdir= in the container's mountinfo", repr(out.split()))


@check("5.4", "copy-on-write: a changed file is copied up whole, the image never changes", points=0.5,
       section="§ Copy-on-write", plug=("prepare", "mount_options", "mount"))
def copy_on_write(ctx: Context) -> None:
    root = ctx.private_state_root()
    conf, original, added = f"app-{_token(ctx, 4)}.conf", _token(ctx), _token(ctx)
    lines = [_token(ctx) for _ in range(ctx.rng.randrange(2, 6))]
    image = _image(root, f"cow{_token(ctx, 4)}:1", [{f"etc/{conf}": "".join(f"{x}\n" for x in lines).encode()}])
    store = Store(root)
    before = {name: _tree(store.layers_root / name) for name in store.layer_dirs(image)}
    name, new = f"c{_token(ctx)}", f"new-{_token(ctx, 4)}"
    _run(ctx, "run", "--name", name, image.name, "sh", "-c",
         f"echo {added} >> /etc/{conf}; echo {original} > /{new}")
    directory = _directory(name)
    copied = directory / "upper" / "etc" / conf
    want = "".join(f"{x}\n" for x in [*lines, added])
    got = copied.read_text() if copied.is_file() else "(missing)"
    ctx.expect(got == want, f"containers/<id>/upper/etc/{conf} to hold the whole file with the "
               f"appended line {want!r}", repr(got[:150]))
    new_file = directory / "upper" / new
    ctx.expect(new_file.is_file(), f"the new file in containers/<id>/upper/{new}",
               f"upper/ holds {sorted(p.name for p in (directory / 'upper').iterdir())}")
    after = {name: _tree(store.layers_root / name) for name in store.layer_dirs(image)}
    ctx.expect(after == before, "the image's layer directories unchanged by the container",
               "they changed: " + ", ".join(n for n in before if before[n] != after.get(n)))
    out = _run(ctx, "run", "--rm", image.name, "cat", f"/etc/{conf}")
    ctx.expect(out.split() == lines, f"a second container to see the image's original /etc/{conf}",
               repr(out.split()))


@check("5.5", "make_whiteout: a layer's .wh. entries hide the files of the layers below", points=1,
       section="§ Whiteouts: deleting in a layer", plug=("make_whiteout",), timeout=90)
def whiteouts(ctx: Context) -> None:
    root = ctx.private_state_root()
    conf, gone, kept, applet = f"{_token(ctx, 6)}.conf", f"g{_token(ctx, 6)}", f"k{_token(ctx, 6)}", _applet(ctx)
    head, _, tail = applet.rpartition("/")
    image = _loaded(ctx, root, f"wh{_token(ctx, 4)}:1", [
        {f"etc/{conf}": b"x\n", f"data/{gone}": b"gone\n", f"data/{kept}": b"kept\n"},
        {f"etc/.wh.{conf}": b"", f"data/.wh.{gone}": b"", f"{head}/.wh.{tail}": b""}])
    paths = [f"/etc/{conf}", f"/data/{gone}", f"/{applet}", f"/data/{kept}", "/bin/busybox"]
    out = _run(ctx, "run", "--rm", image.name, "sh", "-c",
               f"for p in {' '.join(paths)}; do if [ -e $p ]; then echo yes; else echo no; fi; done")
    got = dict(zip(paths, out.split()))
    want = dict(zip(paths, ["no", "no", "no", "yes", "yes"]))
    ctx.expect(got == want, "the top layer's whiteouts to hide " + ", ".join(paths[:3]) + " (and only them)",
               ", ".join(f"{p} {'present' if v == 'yes' else 'absent'}" for p, v in got.items()))
    top = _layer_dir(root, image, -1)
    for path in (f"etc/{conf}", f"data/{gone}", applet):
        try:
            st = os.lstat(top / path)
            kind = f"mode {oct(st.st_mode)} device {os.major(st.st_rdev)}/{os.minor(st.st_rdev)}"
        except FileNotFoundError:
            st, kind = None, "(missing)"
        ctx.expect(st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0,
                   f"the unpacked top layer to hold {path} as a character device 0/0", kind)


@check("5.6", "is_whiteout: mini diff says D, mini commit writes .wh. entries", points=0.5,
       section="§ diff, commit and export", plug=("is_whiteout",), timeout=90)
def diff_and_commit(ctx: Context) -> None:
    root = ctx.private_state_root()
    samples = root / "samples"
    samples.mkdir()
    os.mknod(samples / "whiteout", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.mknod(samples / "whiteout-000", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(samples / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(samples / "char-0-1", stat.S_IFCHR | 0o600, os.makedev(0, 1))
    os.mknod(samples / "block-0-0", stat.S_IFBLK | 0o600, os.makedev(0, 0))
    os.mknod(samples / "fifo", stat.S_IFIFO | 0o600)
    (samples / ".wh.file").write_bytes(b"")
    (samples / ".wh.file").chmod(0o600)
    (samples / "directory").mkdir()
    for sample in ctx.rng.sample(sorted(samples.iterdir()), len(list(samples.iterdir()))):
        got = ctx.learner.is_whiteout(os.lstat(sample))
        want = sample.name.startswith("whiteout")
        ctx.expect(got is want or (isinstance(got, (bool, int)) and bool(got) == want),
                   f"is_whiteout(lstat of {sample.name}) == {want}", repr(got))

    name, applet, file, content = f"c{_token(ctx)}", _applet(ctx), f"f{_token(ctx, 6)}", _token(ctx)
    _run(ctx, "run", "--name", name, "busybox", "sh", "-c", f"rm /{applet}; echo {content} > /etc/{file}")
    diff = ctx.mini("diff", name)
    lines = diff.stdout.splitlines()
    want_lines = [f"D /{applet}", f"A /etc/{file}", "C /etc"]
    ctx.expect(diff.returncode == 0 and all(x in lines for x in want_lines),
               f"`mini diff` to list {', '.join(want_lines)}",
               f"exit {diff.returncode}, {lines[:6]} {diff.stderr.strip()[-150:]!r}")
    tag = f"snap{_token(ctx, 4)}:1"
    committed = ctx.mini("commit", name, tag)
    ctx.expect(committed.returncode == 0, f"`mini commit {name} {tag}` (exit 0)", _out(committed))
    image = Store(root).get(tag)
    layer = Store(root).layout.read_blob(image.layers[-1]["digest"])
    names = tarfile.open(fileobj=io.BytesIO(layer)).getnames()
    head, _, tail = applet.rpartition("/")
    ctx.expect(f"{head}/.wh.{tail}" in names and f"etc/{file}" in names and applet not in names,
               f"the committed layer to hold {head}/.wh.{tail} and etc/{file}", repr(sorted(names)[:8]))
    out = _run(ctx, "run", "--rm", tag, "sh", "-c",
               f"if [ -e /{applet} ]; then echo present; else echo absent; fi; cat /etc/{file}",
               what="the committed image to run")
    ctx.expect(out.split() == ["absent", content], f"/{applet} absent and /etc/{file} {content!r} in "
               "the committed image", repr(out.split()))


def _view(ctx: Context, layout: overlay.Overlay, probe: str, deleted: str) -> dict[str, Any]:
    """Call your view() in the learner server (it changes the caller's mount namespace) and
    look, from here, at what that process has inside the `with` block and after it."""
    server = ctx.server
    report: dict[str, Any] = {"ns_before": server.namespace("mnt")}
    try:
        with ctx.learner.view(layout) as merged:
            merged = Path(merged)
            report["merged"] = str(merged)
            report["ns_inside"] = server.namespace("mnt")
            report["mounted"] = [t for point, t, _ in _mounts(server.mountinfo()) if point == str(merged)]
            seen = server.path(merged)
            report["probe"] = (seen / probe).read_text() if (seen / probe).is_file() else None
            report["deleted"] = os.path.lexists(seen / deleted)
            try:
                (seen / f"written-{os.getpid()}").write_text("x")
                report["writable"] = True
            except OSError:
                report["writable"] = False
        report["after"] = [t for point, t, _ in _mounts(server.mountinfo()) if point == report["merged"]]
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as e:  # noqa: BLE001 - yours, or a path view() yielded that is none
        raise CheckFailed(f"view() raised {type(e).__name__}: {e}"[:300]) from None
    return report


@check("5.7", "view: mini export tars the container's union, read-only, in a namespace of its own",
       points=1.5, section="§ diff, commit and export", plug=("view",), timeout=90)
def export(ctx: Context) -> None:
    root = ctx.private_state_root()
    name, applet, file, content = f"c{_token(ctx)}", _applet(ctx), f"f{_token(ctx, 6)}", _token(ctx)
    _run(ctx, "run", "--name", name, "busybox", "sh", "-c", f"rm /{applet}; echo {content} > /root/{file}")
    before = [m for m in _mounts(ctx.mountinfo()) if m[1] == "overlay"]
    target = root / "export.tar"
    result = ctx.mini("export", "-o", str(target), name)
    ctx.expect(result.returncode == 0, f"`mini export -o FILE {name}` (exit 0)", _out(result))
    after = [m for m in _mounts(ctx.mountinfo()) if m[1] == "overlay"]
    ctx.expect(after == before, "no overlay mount left behind by `mini export` (outside its own process)",
               repr([m[0] for m in after if m not in before]))
    with tarfile.open(target) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        got = tar.extractfile(members[f"root/{file}"]).read().decode().strip() \
            if f"root/{file}" in members and members[f"root/{file}"].isreg() else "(missing)"
    ctx.expect(got == content, f"the export to hold the container's new /root/{file} ({content!r})", got)
    markers = sorted(n for n, m in members.items() if ".wh." in n or (m.ischr() and m.devmajor == m.devminor == 0))
    ctx.expect(applet not in members and "bin/busybox" in members and not markers,
               f"the export to lack the deleted /{applet} (and any whiteout), and hold bin/busybox",
               f"{applet} {'present' if applet in members else 'absent'}, bin/busybox "
               f"{'present' if 'bin/busybox' in members else 'absent'}, whiteouts {markers[:3]}")

    report = _view(ctx, _layout(root, name), f"root/{file}", applet)
    ctx.expect(report.get("ns_inside") != report.get("ns_before"),
               "view() to move into a mount namespace of its own (unshare CLONE_NEWNS)",
               f"the same one, {report.get('ns_inside')}")
    ctx.expect(report.get("mounted", [""])[-1:] == ["overlay"], "an overlay mounted at the path view() yields",
               repr(report.get("mounted")))
    ctx.expect((report.get("probe") or "").strip() == content and report.get("deleted") is False,
               f"the view to show the upper dir's /root/{file} and hide the deleted /{applet}",
               f"{report.get('probe')!r}, {applet} {'present' if report.get('deleted') else 'absent'}")
    ctx.expect(report.get("writable") is False, "a write into the view to fail (read-only)", "it worked")
    ctx.expect(not report.get("after"), "the view unmounted when the `with` block ends",
               f"still mounted: {report.get('after')}")
    _expect_no_overlay_at(ctx, ctx.mountinfo(), Path(report["merged"]), "in the caller's namespace")


@check("5.8", "all together: layers, a container's changes, diff, commit and export", points=0.5,
       section="§ overlayfs: one tree from many",
       plug=("prepare", "mount_options", "mount", "is_whiteout", "make_whiteout", "view"), timeout=90)
def everything(ctx: Context) -> None:
    root = ctx.private_state_root()
    conf, old, top, extra = f"{_token(ctx, 6)}.conf", _token(ctx), _token(ctx), _token(ctx)
    hidden, new = f"h{_token(ctx, 6)}", f"n{_token(ctx, 6)}"
    image = _loaded(ctx, root, f"all{_token(ctx, 4)}:1", [
        {f"etc/{conf}": f"{old}\n".encode(), f"opt/{hidden}": b"hidden\n"},
        {f"etc/{conf}": f"{top}\n".encode(), f"opt/.wh.{hidden}": b""}])
    store = Store(root)
    before = {n: _tree(store.layers_root / n) for n in store.layer_dirs(image)}
    name = f"c{_token(ctx)}"
    out = _run(ctx, "run", "--name", name, image.name, "sh", "-c",
               f"cat /etc/{conf}; if [ -e /opt/{hidden} ]; then echo present; else echo absent; fi; "
               f"echo {extra} >> /etc/{conf}; rm /etc/group; echo {extra} > /{new}")
    ctx.expect(out.split() == [top, "absent"], f"/etc/{conf} of the top layer ({top}) and /opt/{hidden} "
               "deleted by it", repr(out.split()))
    lines = ctx.mini("diff", name).stdout.splitlines()
    want = [f"C /etc/{conf}", "D /etc/group", f"A /{new}"]
    ctx.expect(all(x in lines for x in want), f"`mini diff` to list {', '.join(want)}", repr(lines[:6]))
    tag = f"snap{_token(ctx, 4)}:1"
    committed = ctx.mini("commit", name, tag)
    ctx.expect(committed.returncode == 0, f"`mini commit {name} {tag}` (exit 0)", _out(committed))
    out = _run(ctx, "run", "--rm", tag, "sh", "-c",
               f"cat /etc/{conf} /{new}; if [ -e /etc/group ]; then echo present; else echo absent; fi",
               what="the committed image to run")
    ctx.expect(out.split() == [top, extra, extra, "absent"],
               f"the committed image to have the container's changes: {[top, extra, extra, 'absent']}",
               repr(out.split()))
    target = root / "all.tar"
    exported = ctx.mini("export", "-o", str(target), name)
    ctx.expect(exported.returncode == 0, f"`mini export -o FILE {name}` (exit 0)", _out(exported))
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
    ctx.expect(new in names and "etc/group" not in names and f"opt/{hidden}" not in names,
               f"the export to hold /{new} and lack /etc/group and /opt/{hidden}", repr(sorted(names)[:5]))
    after = {n: _tree(store.layers_root / n) for n in store.layer_dirs(image)}
    ctx.expect(after == before, "the image's layers unchanged", "they changed")


def _kernel_errnos(token: str) -> dict[str, object]:
    """The three mistakes of predicted_errnos(), made in a child with a mount namespace of its
    own (every mount private first, so nothing reaches the checker's; its tmpfs hides /tmp
    from that child only, and everything goes when the child ends)."""
    def mistakes() -> dict[str, int]:
        def overlay_at(target: str, options: str) -> None:
            syscalls.mount("overlay", target, "overlay", 0, options)
            syscalls.umount2(target, syscalls.MNT_DETACH)  # (it should not have worked)

        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        scratch = "/tmp"
        syscalls.mount("tmpfs", scratch, "tmpfs", 0, "size=1m")
        lower, upper, merged, other = (os.path.join(scratch, f"{n}-{token}")
                                       for n in ("lower", "upper", "merged", "other"))
        for path in (lower, upper, merged, other):
            os.mkdir(path)
        syscalls.mount("tmpfs", other, "tmpfs", 0, "size=64k")  # a second mount
        os.mkdir(os.path.join(other, "work"))
        os.mkdir(os.path.join(scratch, "work"))
        found = {"work_on_another_mount": errno_of(lambda: overlay_at(
                     merged, f"lowerdir={lower},upperdir={upper},workdir={other}/work")),
                 "lower_layer_missing": errno_of(lambda: overlay_at(
                     merged, f"lowerdir={scratch}/missing-{token},upperdir={upper},workdir={scratch}/work")),
                 "rmdir_of_a_mount_point": errno_of(lambda: os.rmdir(other))}
        return found

    return errnos_in_child(mistakes)


@check("5.9", "why? predict the kernel's errno for three overlay mistakes", points=1,
       section="§ Mounting the union", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    predicted = ctx.learner.predicted_errnos()
    kernel = _kernel_errnos(_token(ctx))
    expect_predictions(ctx, predicted, kernel)
