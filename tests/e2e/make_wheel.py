#!/usr/bin/env python3
"""Writes DIR/berthdemo-1.0-py3-none-any.whl: a tiny pure-Python wheel (berthdemo.VALUE = 42),
so `pip install --user` can be tested with no network. A wheel is a zip with a dist-info."""
import sys, zipfile, hashlib, base64
out = sys.argv[1] + "/berthdemo-1.0-py3-none-any.whl"
files = {
    "berthdemo/__init__.py": "VALUE = 42\n",
    "berthdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: berthdemo\nVersion: 1.0\n",
    "berthdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: berth-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def rec(data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=").decode()
    return f"sha256={d},{len(data)}"
record = "".join(f"{n},{rec(c)}\n" for n, c in files.items()) + "berthdemo-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(out, "w") as z:
    for n, c in files.items():
        z.writestr(n, c)
    z.writestr("berthdemo-1.0.dist-info/RECORD", record)
