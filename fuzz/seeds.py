#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/TARGET/ (not committed).

Seeds come from testdata/ (the demo image, its policy, every key's signature) and from the
string literals of the unit tests next to each parser, laid out as fuzz/targets_common.rs
expects. `scripts/fuzz --seed` (or: run this, then `cargo +nightly fuzz cmin TARGET
fuzz/seeds/TARGET` into fuzz/corpus/TARGET) merges them into the committed corpora.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")
SEP = b"\n==part==\n"


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def literals(path):
    """The string literals of the `mod tests` part of a Rust file (or all of a tests/ file)."""
    text = read(path).decode()
    i = text.find("mod tests")
    if i >= 0:
        text = text[i:]
    out = []
    pos = 0
    pat = re.compile(r'(b?r(#+)"(.*?)"\2)|(b?"((?:[^"\\]|\\.)*)")', re.S)
    for m in pat.finditer(text, pos):
        if m.group(1):
            s = m.group(3)
        else:
            s = unescape(m.group(5))
            if s is None:
                continue
        out.append(s.encode())
    return out


def unescape(s):
    # A string continued over lines with `\` drops the newline and the next line's indent.
    s = re.sub(r"\\\n\s*", "", s)
    res = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            res.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "u":
            j = s.index("}", i)
            res.append(chr(int(s[i + 3 : j], 16)))
            i = j + 1
            continue
        if n == "x":
            res.append(chr(int(s[i + 2 : i + 4], 16)))
            i += 4
            continue
        res.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}.get(n, n))
        i += 2
    return "".join(res)


seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    seeds.setdefault(target, set()).add(data)


SIGS = [
    "testdata/keys/" + n
    for n in sorted(os.listdir(os.path.join(ROOT, "testdata/keys")))
    if n.endswith(".sig")
] + ["testdata/demo/hello-dir/signature-%d" % i for i in (1, 2, 3)]
MANIFEST = read("testdata/demo/hello-dir/manifest.json")
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# reference
for f in ["src/reference.rs", "src/policy/identity.rs", "tests/parsers_robustness.rs"]:
    for s in literals(f):
        if len(s) < 300:
            add("reference", s)
for s in ["docker://registry.demo.ferry.invalid/hello:1", "store:registry.ferry.test/app:1",
          "oci:/tmp/x:v1", "dir:/tmp/d", "docker://[::1]:5000/a/b@" + EMPTY,
          "docker.io/localhost/foo", "index.docker.io/a", "A.b/c:Tag_1.x-y"]:
    add("reference", s)

# digest: DIGEST\nSIZE\nCHUNKS\nBODY
for s in literals("src/digest.rs"):
    if b"\n" not in s and len(s) < 200:
        add("digest", s + b"\n\n\n")
add("digest", EMPTY + "\n0\n\n")
add("digest", "sha256\n5\n2,1,0,2\nhello")
add("digest", "sha512\n\n1,e\nhello")
add("digest", "sha256\n3\n\nhello")
add("digest", "sha256\n9\n4\nhello")
add("digest", EMPTY + "\n\n1,1\nab")
add("digest", "sha512:" + hashlib.sha512(b"x").hexdigest() + "\n1\n\nx")

# manifest: [DECLARED SEP] MANIFEST
mans = [MANIFEST, read("testdata/demo/hello-oci/index.json")]
for root, _, files in os.walk(os.path.join(ROOT, "testdata/demo/hello-oci/blobs")):
    for n in files:
        b = read(os.path.relpath(os.path.join(root, n), ROOT))
        if b.startswith(b"{"):
            mans.append(b)
for s in literals("src/manifest/mod.rs") + literals("tests/parsers_robustness.rs"):
    if s.startswith(b"{"):
        mans.append(s)
for m in mans:
    add("manifest", m)
add("manifest", b"application/vnd.docker.distribution.manifest.v2+json; charset=utf-8" + SEP + MANIFEST)
add("manifest", b"application/vnd.docker.distribution.manifest.list.v2+json" + SEP + b'{"manifests":[]}')
add("manifest", b'{"schemaVersion":1,"fsLayers":[],"signatures":[{}]}')

# policy: POLICY SEP SLOT SEP SLOT ...
release = base64.b64encode(read("testdata/demo/keys/release.asc")).decode()
trusted = base64.b64encode(read("testdata/keys/trusted.pub.asc")).decode()
demo = json.loads(read("testdata/demo/policy.json.in"))
for t in demo["transports"].values():
    for reqs in t.values():
        for r in reqs:
            r.pop("keyPath", None)
            r["keyData"] = release
demo["transports"]["docker"] = {"": demo["transports"]["dir"][""]}
demo_policy = json.dumps(demo).encode()
demo_slots = [read("testdata/demo/hello-dir/signature-%d" % i) for i in (1, 2, 3)]
add("policy", SEP.join([demo_policy] + demo_slots + [b""]))
trusted_policy = json.dumps({
    "default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": trusted,
                 "signedIdentity": {"type": "remapIdentity", "prefix": "registry.demo.ferry.invalid",
                                    "signedPrefix": "registry.ferry.test"}}],
}).encode()
add("policy", SEP.join([trusted_policy] + [read(s) for s in SIGS]))
for f in ["src/policy/config.rs", "src/policy/eval.rs", "src/policy/gate.rs",
          "src/policy/identity.rs", "src/policy/signed_by.rs", "tests/parsers_robustness.rs"]:
    for s in literals(f):
        if s.lstrip().startswith(b"{") and b"keyPath" not in s:
            add("policy", s + SEP + demo_slots[0])

# registries_d: REFERENCE\nYAML
for f in ["src/config/registries_d.rs", "tests/parsers_robustness.rs", "tests/lookaside.rs"]:
    for s in literals(f):
        if b":" in s and (b"\n" in s or b"docker" in s):
            add("registries_d", b"example.com/ns/app:1\n" + s)
add("registries_d", "registry.ferry.test/app:1\ndocker:\n  registry.ferry.test:\n    lookaside: https://s.example/x/\n    lookaside-staging: file:///tmp/s\n  '*.ferry.test':\n    sigstore: http://a/\ndefault-docker:\n  use-sigstore-attachments: true\n")

# sniff, simple_payload
for s in SIGS:
    add("sniff", read(s))
    add("simple_payload", read(s))
for s in literals("src/signature/sniff.rs"):
    add("sniff", s)
for f in ["src/signature/simple/payload.rs", "src/signature/simple/verify.rs"]:
    for s in literals(f):
        if s.startswith(b"{"):
            add("simple_payload", s)
add("sniff", b"\x00sigstore-json\n{\"mimeType\":\"x\"}")

# record
for s in literals("src/record.rs") + literals("src/transport/store/forensics.rs") + literals("src/transport/store/mod.rs"):
    if s.lstrip().startswith(b"{"):
        add("record", s)
for p in sys.argv[1:]:
    # Real records, e.g. from a store a demo copy made: records/sha256-*/*.json.
    add("record", open(p, "rb").read())

# tar_index, tarsplit, unpack_tar: small tars made here (the archives of testdata are
# megabytes), without tarfile's padding to 10 KiB records so that each seed stays small.
import gzip
import io
import tarfile


def tar(members, fmt=tarfile.PAX_FORMAT):
    """members: (name, bytes) for a file, (name, None) for a directory, (name, "->target") for a
    symlink, (name, "=>target") for a hard link."""
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=fmt)
    for name, content in members:
        info = tarfile.TarInfo(name)
        info.mtime = 1700000000
        if content is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        elif isinstance(content, str) and content.startswith("->"):
            info.type, info.linkname = tarfile.SYMTYPE, content[2:]
            t.addfile(info)
        elif isinstance(content, str) and content.startswith("=>"):
            info.type, info.linkname = tarfile.LNKTYPE, content[2:]
            t.addfile(info)
        else:
            info.size, info.mode = len(content), 0o644
            t.addfile(info, io.BytesIO(content))
    end = t.offset
    t.close()
    return buf.getvalue()[:end] + b"\0" * 1024


def sha(b):
    return hashlib.sha256(b).hexdigest()


layer = tar([("etc", None), ("etc/hostname", b"ferry\n"), ("bin", None),
             ("bin/sh", b"#!/bin/true\n"), ("bin/ash", "=>bin/sh"), ("usr", "->/"),
             ("etc/.wh.old", b"")])
hostile = tar([("../escape", b"x"), ("/abs", b"y"), ("link", "->../../outside"),
               ("link/canary", b"through the link"), ("hard", "=>/etc/passwd"),
               ("a/" + "d" * 120 + "/long", b"pax long name")])
gnu = tar([("g/" + "n" * 110 + "/file", b"gnu long name"), ("l", "->" + "t" * 120)],
          fmt=tarfile.GNU_FORMAT)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
docker_old = tar([
    (sha(config) + ".json", config),
    ("aa/layer.tar", layer), ("aa/VERSION", b"1.0"), ("bb", None), ("bb/layer.tar", "->../aa/layer.tar"),
    ("manifest.json", json.dumps([{"Config": sha(config) + ".json", "RepoTags": ["busybox:latest", "ferry.test/app:1"],
                                   "Layers": ["bb/layer.tar"]}]).encode()),
    ("repositories", json.dumps({"busybox": {"latest": "aa"}}).encode()),
])
gz_layer = gzip.compress(layer, mtime=0)
docker_new = tar([
    ("blobs/sha256/" + sha(config), config), ("blobs/sha256/" + sha(gz_layer), gz_layer),
    ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ("manifest.json", json.dumps([{"Config": "blobs/sha256/" + sha(config), "RepoTags": None,
                                   "Layers": ["blobs/sha256/" + sha(gz_layer)]},
                                  {"Config": "missing", "Layers": []}]).encode()),
])
oci_manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + sha(gz_layer), "size": len(gz_layer)}],
}).encode()
oci = tar([
    ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(oci_manifest),
         "size": len(oci_manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": EMPTY, "size": 0}]}).encode()),
    ("blobs", None), ("blobs/sha256", None),
    ("blobs/sha256/" + sha(oci_manifest), oci_manifest), ("blobs/sha256/" + sha(config), config),
    ("blobs/sha256/" + sha(gz_layer), gz_layer),
])
for t in [layer, hostile, gnu, docker_old, docker_new, oci, gzip.compress(docker_old, mtime=0)]:
    add("tar_index", t)
for t in [layer, gnu, layer + b"trailing bytes after the end"]:
    add("tarsplit", t)
# A tar-split as containers/storage keeps it: segments and files, one names a link out.
add("tarsplit", "".join(json.dumps(e) + "\n" for e in [
    {"type": 2, "payload": base64.b64encode(b"header").decode(), "position": 0},
    {"type": 1, "name": "a", "size": 1, "payload": "", "position": 1},
    {"type": 1, "name": "link", "size": 50, "position": 2},
    {"type": 1, "name_raw": base64.b64encode(b"etc/hostname").decode(), "size": 6, "position": 3},
]))
# A zstd:chunked footer (skippable frame, seven offsets and lengths, the magic) whose TOC
# offset overflowed when added to its length (fuzz/artifacts/tarsplit/).
import struct
add("tarsplit", bytes([0x50, 0x2a, 0x4d, 0x18]) + struct.pack("<I", 64)
    + struct.pack("<7Q", 2**64 - 4, 8, 8, 1, 0, 8, 8) + b"GNUlInUx")
for t in [layer, hostile, gnu, gz_layer]:
    add("unpack_tar", t)

# proxy_request: requests as containers-image-proxy sends them.
for r in [{"method": "Initialize", "args": []}, {"method": "OpenImage", "args": ["docker://quay.io/a/b:1"]},
          {"method": "GetBlob", "args": [1, EMPTY, 3.0]}, {"method": "FinishPipe", "args": [9007199254740991]},
          {"method": "GetRawBlob", "args": [1.5, -1, None, True, {"k": [1e308]}]}, {"method": "Shutdown"}]:
    add("proxy_request", json.dumps(r))

shutil.rmtree(OUT, ignore_errors=True)
for target, items in sorted(seeds.items()):
    d = os.path.join(OUT, target)
    os.makedirs(d)
    for data in items:
        with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{target}: {len(items)} seeds")
