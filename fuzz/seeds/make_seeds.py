#!/usr/bin/env python3
"""Writes the hand-made seed inputs (fuzz/corpus/<target>/seed-*) that follow harness.rs's
byte format; `cargo fuzz` grows the corpus from them and `cargo fuzz cmin` keeps it small."""
import os, re, struct, sys

root = os.path.dirname(os.path.abspath(__file__)) + "/.."
harness = open(root + "/harness.rs").read()
words = re.findall(r'"((?:[^"\\]|\\.)*)"', harness.split("const WORDS")[1].split("];")[0])
opts = open(root + "/../app/src/options.rs").read()
keys = re.findall(r'^        key: "([^"]+)"', opts, re.M)
assert "path" in keys and "scale" in keys, keys

def word(w):  # a string from WORDS (selector < 128)
    return bytes([words.index(w)])

def key(k, table):
    return bytes([table.index(k)])

def s(w):
    return bytes([12]) + word(w)

def u(n):
    return bytes([5, n])

def b(v):
    return bytes([0, int(v)])

def d(x):
    return bytes([10]) + struct.pack("<d", x)

def dict_(entries, table):
    return bytes([0, len(entries)]) + b"".join(key(k, table) + v for k, v in entries)

def wire(entries):
    """A D-Bus little-endian a{sv} (byte 1 selects the wire decoder)."""
    body = b""
    for k, sig, val in entries:
        while len(body) % 8:
            body += b"\0"
        kb = k.encode()
        body += struct.pack("<I", len(kb)) + kb + b"\0"
        body += bytes([len(sig)]) + sig.encode() + b"\0"
        while (len(body) + 8) % 4:  # value alignment relative to the array start (offset 8)
            body += b"\0"
        body += val
    return b"\x01" + struct.pack("<I", len(body)) + b"\0" * 4 + body

def strval(x):
    x = x.encode()
    return struct.pack("<I", len(x)) + x + b"\0"

start = {
    "empty": dict_([], keys),
    "full": dict_([("path", s("a.mkv")), ("codec", s("hevc")), ("encoder", s("software")),
                   ("framerate", u(60)), ("bitrate", u(200)), ("cursor", s("hidden")),
                   ("source", s("window")), ("restore", b(0)), ("duration", d(2.5)),
                   ("notify", b(0))], keys),
    "replay": dict_([("replay", d(30.0)), ("save-on-stop", b(1)), ("audio", s("desktop+mic")),
                     ("audio-codec", s("opus"))], keys),
    "region": dict_([("region", s("100,50 640x360")), ("size", s("1280x"))], keys),
    "scale": dict_([("scale", d(0.5)), ("container", s("webm")), ("codec", s("vp9"))], keys),
    "template": dict_([("path", s("%d-%t.mkv")), ("overwrite", b(1))], keys),
    "conflict": dict_([("bitrate", u(100)), ("quality", u(20))], keys),
    "wire": wire([("framerate", "u", struct.pack("<I", 30)), ("path", "s", strval("w.mp4"))]),
}
rkeys = ["path", "overwrite", "seconds"]
replay = {
    "save": b"\x00\x00\x00" + dict_([("seconds", d(10.0))], rkeys),
    "keep": b"\x01\x01\x01" + dict_([("path", s("b.mp4")), ("overwrite", b(1))], rkeys),
    "template": b"\x02\x00\x00" + dict_([("path", s("%d-%t.mkv"))], rkeys),
    "empty": b"\x00\x01\x01" + dict_([], rkeys),
    "bad": b"\x00\x01\x00" + dict_([("seconds", d(1.0))], rkeys),
}
paths = {
    "default": b"\x00zerocast-%d-%t",
    "percent": b"\x03rec-%d_%t%%",
    "home": b"\x00~/x.mkv",
    "abs": b"\x02/abs/a.mp4",
    "bad": b"\x00a-%x",
    "dir": b"\x00f/",
    "up": b"\x01../up",
    "m4v": b"\x00clip.M4V",
}
tokens = {
    # a file on disk: the token, then the source lines
    "file": b"\x00\x00" + b"4f1c-token\nsource=monitor\nposition=-1280,0\nsize=1280x720\n",
    "old-file": b"\x01\x00" + b"token-only\n",
    "garbage": b"\x02\x00" + b"\n\nposition=1,\nsize=x\n",
    # store then load: a token word, a record with every field
    "store": b"\x00\x01" + bytes([0x80, 3]) + b"tok" + bytes([1, 0x0e, 0])
             + struct.pack("<iiII", -1280, 0, 1920, 1080),
    "store-none": b"\x01\x01" + bytes([0]) + bytes([0]),
}
for target, seeds in [("start_options", start), ("replay_options", replay), ("path_template", paths),
                      ("token_file", tokens)]:
    out = f"{root}/corpus/{target}"
    os.makedirs(out, exist_ok=True)
    for name, data in seeds.items():
        open(f"{out}/seed-{name}", "wb").write(data)
print("seeds written")
