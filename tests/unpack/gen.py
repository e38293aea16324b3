#!/usr/bin/env python3
"""Layer and OCI-layout generator for tests/unpack.rs, written apart from ferry's code so the
tests do not check ferry against itself. Python's tarfile writes any name, type and PAX record,
including the hostile ones no well-behaved tool writes.

  gen.py layout DIR          an OCI layout (tag "t") whose layers exercise layer.md: whiteouts,
                             opaque dirs, hardlinks (within and across layers), symlinks,
                             setuid/setgid/sticky, owners, xattrs, FIFOs, devices, file<->dir
                             replacement, duplicate entries, implicit parents
  gen.py busybox DIR BUSYBOX an OCI layout (tag "t") of a static busybox and its applet links
  gen.py hostile DIR OUTSIDE one blob per hostile layer aimed at the host directory OUTSIDE,
                             and DIR/hostile.json describing them
  gen.py absolute DIR        an OCI layout (tag "t") whose second layer holds /etc/evil, an
                             absolute name
  gen.py many DIR N          one gzip layer of N small files in 100-file directories (tag "t")
  gen.py big DIR N MIB       N gzip layers of MIB MiB each (1 MiB files of random bytes, which
                             gzip cannot shrink) (tag "t")
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000


def info(name, type_=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.uid = uid
    ti.gid = gid
    ti.mtime = MTIME
    ti.uname = ""
    ti.gname = ""
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


class Layer:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def dir(self, name, mode=0o755, **kw):
        self.tar.addfile(info(name, tarfile.DIRTYPE, mode, **kw))

    def file(self, name, data=b"", mode=0o644, **kw):
        if isinstance(data, str):
            data = data.encode()
        ti = info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target, **kw):
        self.tar.addfile(info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw))

    def hardlink(self, name, target, **kw):
        self.tar.addfile(info(name, tarfile.LNKTYPE, 0o644, linkname=target, **kw))

    def fifo(self, name, mode=0o600):
        self.tar.addfile(info(name, tarfile.FIFOTYPE, mode))

    def chardev(self, name, major, minor, mode=0o666):
        self.tar.addfile(info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor))

    def blockdev(self, name, major, minor, mode=0o660):
        self.tar.addfile(info(name, tarfile.BLKTYPE, mode, devmajor=major, devminor=minor))

    def raw(self, ti, data=b""):
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def write_blob(layout, data):
    h = hashlib.sha256(data).hexdigest()
    d = os.path.join(layout, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def write_layout(layout, layers, config_extra=None):
    """layers: list of (tar bytes, "gzip"|"tar")."""
    os.makedirs(layout, exist_ok=True)
    descs, diff_ids = [], []
    for tar, comp in layers:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        if comp == "gzip":
            blob = gzip.compress(tar, compresslevel=1, mtime=0)
            mt = "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            blob = tar
            mt = "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": mt, "digest": write_blob(layout, blob), "size": len(blob)})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z"} for _ in layers],
    }
    if config_extra:
        config["config"].update(config_extra)
    cbytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": write_blob(layout, cbytes),
            "size": len(cbytes),
        },
        "layers": descs,
    }
    mbytes = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": write_blob(layout, mbytes),
                "size": len(mbytes),
                "annotations": {"org.opencontainers.image.ref.name": "t"},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def layout(out):
    l1 = Layer()
    l1.dir(".", mode=0o751)
    l1.file("./dot-slash-name", "a leading ./ is the root's")
    l1.dir("etc")
    l1.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    l1.file("etc/group", "root:x:0:\nalice:x:1000:\nwheel:x:10:alice\n")
    l1.dir("usr", uid=0, gid=0)
    l1.dir("usr/bin")
    l1.file("usr/bin/tool", "#!/bin/sh\necho tool\n", mode=0o755)
    l1.file("usr/bin/suid", "suid", mode=0o4755)
    l1.file("usr/bin/sgid", "sgid", mode=0o2711, gid=50)
    l1.dir("tmp", mode=0o1777)
    l1.dir("home/alice", mode=0o700, uid=1000, gid=1000)
    l1.file("home/alice/notes", "alice's", mode=0o600, uid=1000, gid=1000)
    l1.symlink("bin", "usr/bin")
    l1.symlink("etc/abs-link", "/usr/bin/tool")
    l1.symlink("dangling", "/nowhere/at/all")
    l1.file("data/a", "same inode")
    l1.hardlink("data/a-link", "data/a")
    ti = info("data/xattr", tarfile.REGTYPE, 0o644)
    ti.pax_headers = {"SCHILY.xattr.user.ferry": "value-1", "SCHILY.xattr.user.other": "two"}
    l1.raw(ti, b"has xattrs")
    ti = info("data/xdir", tarfile.DIRTYPE, 0o755)
    ti.pax_headers = {"SCHILY.xattr.user.dir": "on-a-dir"}
    l1.raw(ti)
    l1.fifo("data/fifo", 0o640)
    l1.chardev("dev/null", 1, 3)
    l1.blockdev("dev/loop9", 7, 9)
    l1.dir("replaced_dir")
    l1.file("replaced_dir/child", "child")
    l1.file("replaced_file", "was a file")
    l1.file("gone", "to be whited out")
    l1.dir("olddir")
    l1.file("olddir/inner", "whited out with its dir")
    l1.dir("opq")
    l1.file("opq/lower", "hidden by the opaque marker")
    l1.dir("opq/lowersub")
    l1.file("opq/lowersub/deep", "hidden too")
    l1.dir("opq2")
    l1.file("opq2/lower", "hidden; the marker comes after this layer's entry")
    l1.file("link-to-replace", "file")
    l1.symlink("sym-to-file", "etc/passwd")
    l1.file("deep/a/b/c/d/e/f/g", "deep")
    l1.file("dup", "first")
    l1.file("big", os.urandom(300000))

    l2 = Layer()
    l2.file(".wh.gone")
    l2.file(".wh.olddir")
    l2.dir("opq")
    l2.file("opq/.wh..wh..opq")
    l2.file("opq/new", "added with the opaque marker")
    l2.dir("opq2")
    l2.file("opq2/new2", "before the marker")
    l2.file("opq2/.wh..wh..opq")
    l2.file("replaced_dir", "now a file")
    l2.dir("replaced_file", mode=0o750)
    l2.file("replaced_file/child", "now a dir")
    l2.hardlink("cross-layer-link", "data/a")
    l2.file("dup", "second")
    l2.file("dup", "third wins")
    l2.file("implicit/parent/file", "parents made implicitly")
    l2.file("sym-to-file", "a file replaces the symlink")
    l2.symlink("link-to-replace", "usr/bin/tool")
    l2.file("usr/bin/tool", "#!/bin/sh\necho tool v2\n", mode=0o755)
    l2.file("usr/bin/.wh.suid")

    l3 = Layer()
    l3.file("implicit/.wh.parent")
    l3.file("data/.wh.a")
    l3.file("etc/new", "in a gzip layer after a tar one", mode=0o640, uid=1000, gid=10)

    write_layout(
        out,
        [(l1.bytes(), "gzip"), (l2.bytes(), "tar"), (l3.bytes(), "gzip")],
        {
            "User": "alice",
            "Env": ["FOO=bar", "PATH=/usr/bin:/bin"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hi"],
            "WorkingDir": "/home/alice",
            "Labels": {"com.example.label": "v"},
            "StopSignal": "SIGINT",
            "ExposedPorts": {"8080/tcp": {}},
        },
    )


def busybox(out, bb_path):
    l = Layer()
    for d in ("bin", "etc", "tmp", "root"):
        l.dir(d, mode=0o1777 if d == "tmp" else 0o755)
    with open(bb_path, "rb") as f:
        l.file("bin/busybox", f.read(), mode=0o755)
    for applet in ("sh", "echo", "id", "cat", "ls", "pwd", "env"):
        l.symlink("bin/" + applet, "/bin/busybox")
    l.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    l.file("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    l.file("etc/motd", "hello from a ferry bundle\n")
    write_layout(
        out,
        [(l.bytes(), "gzip")],
        {"Cmd": ["/bin/sh", "-c", "cat /etc/motd; echo uid=$(id -u) cwd=$(pwd) foo=$FOO"],
         "Env": ["FOO=from-image"], "WorkingDir": "/tmp"},
    )


def hostile(out, outside):
    """outside: the host directory the layers aim at; nothing may appear in it."""
    os.makedirs(out, exist_ok=True)
    cases = []
    O = outside.rstrip("/")

    def add(name, layer, entry, comp="tar", expect="refused"):
        data = layer.bytes() if isinstance(layer, Layer) else layer
        blob = gzip.compress(data, compresslevel=1, mtime=0) if comp == "gzip" else data
        path = os.path.join(out, name)
        with open(path, "wb") as f:
            f.write(blob)
        mt = {
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "tar": "application/vnd.oci.image.layer.v1.tar",
        }[comp]
        cases.append({"name": name, "file": path, "media_type": mt,
                      "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
                      "entry": entry, "expect": expect})

    l = Layer(); l.file("ok", "fine"); l.file("../escaped", "x")
    add("dotdot", l, "../escaped")
    l = Layer(); l.file("a/../../escaped2", "x")
    add("dotdot-inner", l, "a/../../escaped2")
    # Absolute names: no builder writes them; umoci and GNU tar strip the "/", ferry refuses.
    l = Layer(); l.file("ok", "fine"); l.file("/abs-name", "refused, not stripped")
    add("absolute", l, "/abs-name")
    l = Layer(); l.symlink("/abs-link", "etc")
    add("absolute-symlink-name", l, "/abs-link")
    l = Layer(); l.file("//etc/.wh.passwd", "")
    add("absolute-whiteout", l, "//etc/.wh.passwd")
    # A symlink to the host's directory (the test's "outside"), then a file written through it.
    l = Layer(); l.symlink("evil", O); l.file("evil/pwned", "x")
    add("symlink-write-through", l, "evil/pwned", expect="inside")
    l = Layer(); l.symlink("evil", "../../../../../../../.." + O); l.file("evil/pwned", "x")
    add("symlink-dotdot-write-through", l, "evil/pwned", expect="inside")
    # A chain: c1 -> c2 -> c3 -> outside, then a write through c1.
    l = Layer(); l.symlink("c3", O); l.symlink("c2", "c3"); l.symlink("c1", "c2")
    l.file("c1/pwned", "x")
    add("symlink-chain", l, "c1/pwned", expect="inside")
    # The final component a symlink to outside, then a file of the same name: replaced.
    l = Layer(); l.symlink("victim", O + "/victim-file"); l.file("victim", "x")
    add("symlink-then-file", l, "victim", expect="inside")
    l = Layer(); l.hardlink("hl", "../../../../../../../.." + O + "/secret")
    add("hardlink-dotdot", l, "hl")
    l = Layer(); l.symlink("out", O); l.hardlink("hl", "out/secret")
    add("hardlink-through-symlink", l, "hl")
    l = Layer(); l.hardlink("hl", O + "/secret")
    add("hardlink-absolute", l, "hl")
    l = Layer(); l.file("a/.wh...", "")
    add("whiteout-dotdot", l, "a/.wh...")
    l = Layer(); l.file(".wh..", "")
    add("whiteout-dot", l, ".wh..")
    # 64 MiB of zeros: 64 KiB gzipped; the test caps at 8 MiB.
    l = Layer(); ti = info("bomb"); ti.size = 64 << 20
    l.tar.addfile(ti, io.BytesIO(bytes(64 << 20)))
    add("gzip-bomb", l, "bomb", comp="gzip", expect="limit")
    l = Layer(); l.file("f", os.urandom(200000))
    full = gzip.compress(l.bytes(), compresslevel=1, mtime=0)
    trunc = full[: len(full) // 2]
    path = os.path.join(out, "truncated-gzip")
    with open(path, "wb") as f:
        f.write(trunc)
    cases.append({"name": "truncated-gzip", "file": path,
                  "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": "sha256:" + hashlib.sha256(trunc).hexdigest(),
                  "entry": "f", "expect": "corrupt"})
    # Duplicates: a directory, then a symlink to outside under the same name, then a file below
    # it: the symlink replaced the directory and the file must land inside.
    l = Layer(); l.dir("d"); l.symlink("d", O); l.file("d/pwned", "x"); l.file("d2", "1")
    l.file("d2", "2")
    add("duplicates", l, "d/pwned", expect="inside")
    with open(os.path.join(out, "hostile.json"), "w") as f:
        json.dump(cases, f, indent=1)


def many(out, n):
    l = Layer()
    for i in range(n):
        if i % 100 == 0:
            l.dir("d%05d" % (i // 100))
        l.file("d%05d/f%06d" % (i // 100, i), "file %d\n" % i)
    write_layout(out, [(l.bytes(), "gzip")], {"Cmd": ["/bin/true"]})


def absolute(out):
    l1 = Layer(); l1.dir("etc"); l1.file("etc/hostname", "fine\n")
    l2 = Layer(); l2.file("etc/ok", "fine\n"); l2.file("/etc/evil", "absolute\n")
    write_layout(out, [(l1.bytes(), "gzip"), (l2.bytes(), "gzip")], {"Cmd": ["/bin/true"]})


def big(out, n, mib):
    import random
    rnd = random.Random(26)
    layers = []
    for i in range(n):
        l = Layer()
        l.dir("layer%d" % i)
        for j in range(mib):
            l.file("layer%d/f%04d" % (i, j), rnd.randbytes(1 << 20))
        layers.append((l.bytes(), "gzip"))
    write_layout(out, layers, {"Cmd": ["/bin/true"]})


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "layout":
        layout(sys.argv[2])
    elif cmd == "busybox":
        busybox(sys.argv[2], sys.argv[3])
    elif cmd == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    elif cmd == "absolute":
        absolute(sys.argv[2])
    elif cmd == "many":
        many(sys.argv[2], int(sys.argv[3]))
    elif cmd == "big":
        big(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("unknown command " + cmd)
