"""Chapter 05 against real peers: images go between mini, Docker and skopeo, unchanged.

- docker -> mini: an image that the real Docker engine built (several layers, a whiteout, an
  opaque directory, ENV, WORKDIR, ENTRYPOINT and CMD) and saved loads into mini and runs there
  as it runs in docker, with docker's image ID;
- mini -> docker: what `mini save` writes loads into docker and runs there, same image IDs; it
  is also what skopeo reads as a docker-archive and as an OCI archive;
- skopeo: `skopeo copy` of mini's store (an OCI image layout) to another layout and back into a
  fresh store keeps every digest, and mini runs the copy.

No network: every image is made here, from mini's busybox layer. The Docker daemon is private to
the session and changes nothing on the host (tests/peers.py); containers run with
`--network none` and `--rm`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from conftest import mini
from peers import Dockerd, dockerd, need, SKOPEO, skopeo  # noqa: F401  (dockerd: a fixture)

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]

BUILT = "minipeers/built:v1"
BASE = "minipeers/base:v1"
TAGGED = "minipeers/tagged:v2"

DOCKERFILE = """\
FROM minipeers/base:v1
RUN echo made-by-docker > /made.txt
RUN rm /etc/mini-doomed.txt
RUN rm -rf /srv/replaced && mkdir /srv/replaced && echo new > /srv/replaced/new.txt
ENV GREETING=hello-from-docker PATH=/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /work/dir
ENTRYPOINT ["/bin/sh", "-c", "echo \\"$GREETING|$(pwd)|$*\\"", "entry"]
CMD ["one", "two"]
"""

# Inside the built image: what the RUN steps did, seen from the container.
PROBE = ("cat /made.txt; ls -a /srv/replaced | tr '\\n' ' '; echo;"
         " test -e /etc/mini-doomed.txt && echo doomed-present || echo doomed-absent;"
         " cat /etc/mini-kept.txt; find / -xdev -name '.wh.*' | head -3")
PROBE_OUTPUT = "made-by-docker\n. .. new.txt \ndoomed-absent\nkept\n"


def base_rootfs() -> bytes:
    """mini's busybox root filesystem plus files the Dockerfile deletes, keeps and replaces."""
    from mini_runtime.image import busybox

    source = tarfile.open(fileobj=io.BytesIO(busybox.build_layer()))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member in source:
            tar.addfile(member, source.extractfile(member) if member.isreg() else None)
        for name, data in (("etc/mini-doomed.txt", b"doomed\n"), ("etc/mini-kept.txt", b"kept\n"),
                           ("srv/replaced/old.txt", b"old\n"), ("srv/replaced/older.txt", b"older\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def mini_ids(**kwargs) -> dict[str, str]:
    """`mini images` as {"repository:tag": "IMAGE ID"}."""
    result = mini("images", **kwargs)
    assert result.returncode == 0, result.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()]
    assert rows[0][:3] == ["REPOSITORY", "TAG", "IMAGE ID"], result.stdout
    return {f"{row[0]}:{row[1]}": row[2] for row in rows[1:]}


def docker_ids(docker: Dockerd) -> dict[str, str]:
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    return dict(line.split() for line in out.splitlines())


def whiteouts(docker_archive: Path) -> set[str]:
    found = set()
    with tarfile.open(docker_archive) as archive:
        for layer in json.load(archive.extractfile("manifest.json"))[0]["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as tar:
                found.update(name for name in tar.getnames() if "/.wh." in "/" + name)
    return found


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr}{result.stdout}"
    return result.stdout


# --- docker -> mini ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def from_docker(dockerd, tmp_path_factory) -> dict[str, object]:
    """Docker builds the image and says what it does; `docker save` writes it alone
    (built.tar) and together with its base image, which shares its first layer (both.tar)."""
    work = tmp_path_factory.mktemp("from-docker")
    (work / "rootfs.tar").write_bytes(base_rootfs())
    (work / "context").mkdir()
    (work / "context" / "Dockerfile").write_text(DOCKERFILE)
    try:
        dockerd("import", str(work / "rootfs.tar"), BASE)
        dockerd("build", "--network", "none", "--force-rm", "-t", BUILT, str(work / "context"))
        image_id = dockerd("image", "inspect", "--format", "{{.Id}}", BUILT).strip()
        layers = json.loads(dockerd("image", "inspect", "--format", "{{json .RootFS.Layers}}", BUILT))
        assert len(layers) == 5  # the import, three RUNs and WORKDIR's new directory
        facts = {
            "dir": work, "id": image_id, "docker images": docker_ids(dockerd),
            # What docker itself says the image does: the reference for mini.
            "run": dockerd("run", "--rm", "--network", "none", BUILT),
            "probe": dockerd("run", "--rm", "--network", "none", "--entrypoint", "sh", BUILT, "-c", PROBE),
        }
        dockerd("save", "-o", str(work / "built.tar"), BUILT)
        dockerd("save", "-o", str(work / "both.tar"), BUILT, BASE)
    finally:
        dockerd.run("rmi", BUILT, BASE)
    return facts


def test_image_built_and_saved_by_docker_loads_and_runs_in_mini(from_docker):
    assert from_docker["run"] == "hello-from-docker|/work/dir|one two\n"
    assert from_docker["probe"] == PROBE_OUTPUT
    archive = from_docker["dir"] / "built.tar"
    # The layers carry the deletions as whiteouts: a file's, and a replaced directory's (opaque).
    assert whiteouts(archive) == {"etc/.wh.mini-doomed.txt", "srv/replaced/.wh..wh..opq"}
    try:
        loaded = mini("load", "-i", str(archive), timeout=60)
        assert ok(loaded).splitlines() == [f"Loaded image: {BUILT}"]
        # IMAGE ID: the first 12 hex digits of the config digest, as `docker images` shows it.
        assert mini_ids()[BUILT] == from_docker["docker images"][BUILT] \
            == from_docker["id"].removeprefix("sha256:")[:12]

        assert ok(mini("run", "--rm", BUILT)) == from_docker["run"]  # ENTRYPOINT+CMD, ENV, WORKDIR
        assert ok(mini("run", "--rm", BUILT, "three")) == "hello-from-docker|/work/dir|three\n"
        assert ok(mini("run", "--rm", "--entrypoint", "sh", BUILT, "-c", PROBE)) == from_docker["probe"]
        assert ok(mini("run", "--rm", "--entrypoint", "env", BUILT)).count("GREETING=hello-from-docker\n") == 1
    finally:
        mini("rmi", BUILT)


def test_docker_save_of_two_images_sharing_a_layer_loads_in_mini(from_docker, tmp_path):
    fresh = {**os.environ, "MINI_ROOT": str(tmp_path / "root"), "MINI_RUN": str(tmp_path / "run")}
    with tarfile.open(from_docker["dir"] / "both.tar") as archive:
        assert any(member.issym() for member in archive if member.name.endswith("/layer.tar"))
    loaded = ok(mini("load", "-i", str(from_docker["dir"] / "both.tar"), env=fresh, timeout=60))
    assert sorted(loaded.splitlines()) == sorted([f"Loaded image: {BUILT}", f"Loaded image: {BASE}"])
    assert ok(mini("run", "--rm", BASE, "cat", "/etc/mini-doomed.txt", env=fresh)) == "doomed\n"


# --- mini -> docker ----------------------------------------------------------------------------

def test_image_saved_by_mini_loads_and_runs_in_docker(dockerd, tmp_path):
    archive = tmp_path / "saved.tar"
    ok(mini("run", "--rm", "busybox", "true"))  # the built-in image exists from here on
    ok(mini("tag", "busybox:latest", TAGGED))
    try:
        ok(mini("save", "-o", str(archive), "busybox:latest", TAGGED, timeout=60))
        ids = mini_ids()
    finally:
        mini("rmi", TAGGED)

    try:
        out = dockerd("load", "-i", str(archive))
        assert sorted(line for line in out.splitlines() if line.startswith("Loaded image")) == \
            sorted(["Loaded image: busybox:latest", f"Loaded image: {TAGGED}"])
        hello = dockerd("run", "--rm", "--network", "none", "busybox:latest", "echo", "hello from mini")
        assert hello == "hello from mini\n"
        assert dockerd("run", "--rm", "--network", "none", TAGGED, "sh", "-c", "echo $PATH") == \
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        in_docker = docker_ids(dockerd)
        assert in_docker["busybox:latest"] == ids["busybox:latest"]
        assert in_docker[TAGGED] == ids["busybox:latest"]
    finally:
        dockerd.run("rmi", "busybox:latest", TAGGED)

    # The same file is both a docker-archive and an OCI archive: skopeo reads it either way.
    need(SKOPEO)
    manifests = {}
    for transport in ("docker-archive", "oci-archive"):
        info = json.loads(skopeo("inspect", f"{transport}:{archive}:busybox:latest",
                                 work=tmp_path / "skopeo").stdout)
        manifests[transport] = info["Layers"]
    assert manifests["docker-archive"] == manifests["oci-archive"]


# --- skopeo: mini's store -> another layout -> a fresh store ---------------------------------------

def _image(layout: Path, ref: str) -> dict[str, object]:
    """From an OCI layout: the manifest digest that `ref` names, its bytes' own digest, and the
    config and layer digests; every blob checked against its name."""
    index = json.loads((layout / "index.json").read_text())
    entries = [m for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref]
    assert len(entries) == 1, index
    algorithm, hexdigest = entries[0]["digest"].split(":")
    raw = (layout / "blobs" / algorithm / hexdigest).read_bytes()
    manifest = json.loads(raw)
    blobs = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    for digest in blobs:
        algorithm, hexdigest = digest.split(":")
        assert hashlib.sha256((layout / "blobs" / algorithm / hexdigest).read_bytes()).hexdigest() \
            == hexdigest
    return {"manifest": entries[0]["digest"], "bytes": "sha256:" + hashlib.sha256(raw).hexdigest(),
            "size": entries[0]["size"], "config": manifest["config"]["digest"],
            "layers": [layer["digest"] for layer in manifest["layers"]],
            "layer types": [layer["mediaType"] for layer in manifest["layers"]]}


def test_skopeo_copies_mini_store_there_and_back_keeping_every_digest(state_root, tmp_path):
    need(SKOPEO)
    ok(mini("run", "--rm", "busybox", "true"))  # the built-in image exists from here on
    store = state_root / "images"
    other = tmp_path / "other-layout"
    fresh = {**os.environ, "MINI_ROOT": str(tmp_path / "root2"), "MINI_RUN": str(tmp_path / "run2")}
    store2 = tmp_path / "root2" / "images"
    work = tmp_path / "skopeo"

    original = _image(store, "busybox:latest")
    assert original["manifest"] == original["bytes"]
    # skopeo's `oci` destination gzips uncompressed layers by default (mini's are plain tar),
    # which rewrites the layer and manifest digests. --preserve-digests (also in Debian's 1.9.3)
    # makes it copy every blob as it is, or fail rather than change one;
    # --dest-oci-accept-uncompressed-layers would also do here, but only for this one reason.
    skopeo("copy", "--preserve-digests", f"oci:{store}:busybox:latest",
           f"oci:{other}:busybox:latest", work=work)
    assert _image(other, "busybox:latest") == original
    # skopeo makes the fresh store's empty layout itself, but not the directories above it.
    store2.parent.mkdir()
    skopeo("copy", "--preserve-digests", f"oci:{other}:busybox:latest",
           f"oci:{store2}:copy:latest", work=work)
    assert _image(store2, "copy:latest") == original

    for layout, ref in ((store, "busybox:latest"), (other, "busybox:latest"), (store2, "copy:latest")):
        info = json.loads(skopeo("inspect", f"oci:{layout}:{ref}", work=work).stdout)
        assert (info["Digest"], info["Layers"]) == (original["manifest"], original["layers"])
        config = skopeo("inspect", "--raw", "--config", f"oci:{layout}:{ref}", work=work).stdout
        assert "sha256:" + hashlib.sha256(config.encode()).hexdigest() == original["config"]

    # (mini adds its built-in busybox to the fresh store on first use: the copy must stay as is.)
    assert mini_ids(env=fresh)["copy:latest"] == original["config"].removeprefix("sha256:")[:12]
    assert ok(mini("run", "--rm", "copy:latest", "echo", "ok", env=fresh)) == "ok\n"
    assert _image(store2, "copy:latest") == original

    # And what skopeo writes by default, gzip-compressed layers, loads and runs in mini too:
    # copied to a third layout (in the fresh store skopeo would reuse the uncompressed blob),
    # then as an OCI archive into the fresh store with `mini load`.
    gzip_layout, archive = tmp_path / "gzip-layout", tmp_path / "gzipped.tar"
    skopeo("copy", f"oci:{store}:busybox:latest", f"oci:{gzip_layout}:busybox:latest", work=work)
    gzipped = _image(gzip_layout, "busybox:latest")
    assert gzipped["config"] == original["config"] and gzipped["layers"] != original["layers"]
    assert gzipped["layer types"] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    skopeo("copy", "--preserve-digests", f"oci:{gzip_layout}:busybox:latest",
           f"oci-archive:{archive}:gzipped:latest", work=work)
    assert ok(mini("load", "-i", str(archive), env=fresh)) == "Loaded image: gzipped:latest\n"
    # The fresh store has this image (its config) already: one image per id, as docker keeps it,
    # so the name goes to the stored image and the gzip layers are never read. Into a store
    # without it, they are: the image as skopeo wrote it.
    assert _image(store2, "gzipped:latest") == original
    third = {**os.environ, "MINI_ROOT": str(tmp_path / "root3"), "MINI_RUN": str(tmp_path / "run3")}
    assert ok(mini("load", "-i", str(archive), env=third)) == "Loaded image: gzipped:latest\n"
    assert _image(tmp_path / "root3" / "images", "gzipped:latest") == gzipped
    assert ok(mini("run", "--rm", "gzipped:latest", "echo", "ok", env=third)) == "ok\n"
    assert ok(mini("run", "--rm", "gzipped:latest", "echo", "ok", env=fresh)) == "ok\n"
    for kept in (tmp_path / "run2", tmp_path / "root2" / "containers",  # --rm: nothing kept
                 tmp_path / "run3", tmp_path / "root3" / "containers"):
        assert not kept.exists() or not os.listdir(kept)


# --- commit --change: docker's answers are the expected ones ----------------------------------------

#: -c lists, each committed from the same container in docker and in mini. None of the expected
#: configs or messages is written here: docker says them.
CHANGES = [
    [],
    ['CMD ["cat", "/f"]', 'ENV B=$A.2 C="x y" D=\'$A\' E=\\$A', "EXPOSE 80 53/udp 8000-8002 $A",
     'LABEL "x y"="$A z" k=w'],
    ["ENTRYPOINT /bin/echo x"], ["ENTRYPOINT []", "CMD []"], ["CMD echo hi", 'ENTRYPOINT ["/bin/echo"]'],
    ["CMD"], ["CMD a \\", "b"], ["ENV a b c", "ENV PATH=/x:$PATH x=${A:+yes} y=${NOPE:+no} z=${NOPE:-d}"],
    ["WORKDIR rel", "WORKDIR ../x/./y", "USER nobody:$A", "VOLUME /a /b", 'VOLUME ["/c"]'],
    ["onbuild  run echo $A", "HEALTHCHECK --interval=5s --retries=3 CMD true"], ["HEALTHCHECK NONE"],
    ["ADD x y"], ["STOPSIGNAL 9"], ["ENV"], ["ENV a"], ["ENV a=1 b"], ["ENV =x"], ["LABEL a"],
    ['CMD ["a", 1]'], ["EXPOSE 80/xyz"], ["EXPOSE 70000"], ["USER"], ['VOLUME [""]'],
    ["ONBUILD ONBUILD RUN x"], ["ONBUILD FROM x"], ["HEALTHCHECK --interval=5x CMD true"],
    ["HEALTHCHECK FOO true"], ["CMD --foo x"], ["# a comment", ""], ["ENV x=${A"],
    ['ENV x="unterminated'], ["ENV x=${A-d}"], ["ENV ok=1", "BAD"],
]
COMPARED = ("Cmd", "Entrypoint", "Env", "ExposedPorts", "Healthcheck", "Labels", "OnBuild", "User",
            "Volumes", "WorkingDir")


def _settings(config: dict) -> dict:
    """The fields both keep, an empty value and a missing one alike."""
    return {key: config.get(key) for key in COMPARED if config.get(key) not in (None, "", [], {})}


def test_commit_with_changes_gives_the_config_docker_gives(dockerd, tmp_path):
    archive = tmp_path / "busybox.tar"
    ok(mini("run", "--rm", "busybox", "true"))
    ok(mini("save", "-o", str(archive), "busybox:latest", timeout=60))
    made = ["run", "--name", "minipeers-commit", "-e", "A=1", "-w", "/tmp", "-l", "k=v", "--network", "none",
            "busybox", "sh", "-c", "echo hi > /f"]
    dockerd("load", "-i", str(archive))
    try:
        dockerd(*made)
        ok(mini(*made))
        for number, changes in enumerate(CHANGES):
            flags = [word for change in changes for word in ("-c", change)]
            tag = f"minipeers/commit:{number}"
            theirs = dockerd.run("commit", *flags, "minipeers-commit", tag)
            ours = mini("commit", *flags, "minipeers-commit", tag)
            if theirs.returncode:
                reason = theirs.stderr.removeprefix("Error response from daemon: ")
                assert (ours.returncode, ours.stderr) == (1, f"mini: {reason}"), changes
                assert mini("image", "inspect", tag).returncode == 1, changes  # nothing made
                continue
            ok(ours)
            want = json.loads(dockerd("image", "inspect", "--format", "{{json .Config}}", tag))
            got = json.loads(ok(mini("image", "inspect", "--format", "{{json .Config}}", tag)))
            assert _settings(got) == _settings(want), changes
            if number == 1:  # and it runs as docker's does
                assert ok(mini("run", "--rm", tag)) == dockerd("run", "--rm", "--network", "none", tag)
            mini("rmi", tag)
    finally:
        mini("rm", "-f", "minipeers-commit")
        dockerd.run("rm", "-f", "minipeers-commit")
        tags = [f"minipeers/commit:{n}" for n in range(len(CHANGES))]
        dockerd.run("rmi", "busybox:latest", *tags)
        mini("rmi", *tags)
