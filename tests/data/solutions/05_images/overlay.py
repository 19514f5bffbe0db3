"""Model solution of exercise 05's extension (instructors only: learners never see this file).
`exercises.parts.model_source` appends it to mini_runtime/overlay.py; the honesty tests grade
the result (full marks).

The kernel already knows how to apply whiteouts and opaque directories: mount the layers as a
read-only overlay (lower layers only, as `view` does), in a mount namespace of our own, and tar
what it shows. A walk of the layers bottom to top that applies them by hand is the other answer
(and the one to expect from most learners)."""

import io
import tarfile
import tempfile


def squash_layer(layers_root: Path, lower: list[str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if len(lower) == 1:  # one layer: nothing above it to apply
            top = layers_root / lower[0]
            for name in sorted(os.listdir(top)):
                tar.add(top / name, arcname=name)
            return out.getvalue()
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        here = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="mini-squash-") as target:
            os.chdir(layers_root)  # relative lower paths, as in mount()
            try:
                syscalls.mount("overlay", target, "overlay", syscalls.MS_RDONLY, "lowerdir=" + ":".join(lower))
            finally:
                os.chdir(here)
            try:
                for name in sorted(os.listdir(target)):
                    tar.add(os.path.join(target, name), arcname=name)
            finally:
                syscalls.umount2(target, syscalls.MNT_DETACH)
    return out.getvalue()
