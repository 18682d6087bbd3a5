#!/usr/bin/env python3
"""The layers are enforced by the build: a file compiled with a library's own flags sees the
headers of that library's folder and of the libraries it links, and no others. For each
library, one header of every other folder is included in a one-line file compiled with the
flags of one of that library's own sources: what the layering allows must compile, what it
forbids must fail with "No such file or directory". Usage: layers.py build/compile_commands.json"""
import json, os, shlex, subprocess, sys, tempfile

# folder -> folders it may include (itself included), from docs/ARCHITECTURE.md
allowed = {
    "util": {"util"},
    "core": {"util", "core"},
    "agent": {"util", "core", "agent"},
    "store": {"util", "core", "store"},
    "offers": {"util", "core", "offers"},
    "state": {"util", "core", "state"},
    "remote": {"util", "core", "remote"},
    "provider": {"util", "core", "agent", "offers", "remote", "provider"},
    "engine": {"util", "core", "agent", "store", "state", "remote", "provider", "engine"},
    "cli": {"util", "core", "agent", "store", "offers", "state", "remote", "provider", "engine", "cli"},
}
header = {"util": "util/result.hpp", "core": "core/config.hpp", "agent": "agent/store.hpp",
          "store": "store/objects.hpp", "offers": "offers/query.hpp", "state": "state/state.hpp",
          "remote": "remote/ssh.hpp", "provider": "provider/provider.hpp",
          "engine": "engine/lifecycle.hpp", "cli": "cli/context.hpp"}
cmds = json.load(open(sys.argv[1]))
bad = checked = 0
with tempfile.TemporaryDirectory() as tmp:
    for lib, may in allowed.items():
        own = [c for c in cmds if f"/src/berth/{lib}/" in c["file"] and "/provider/vast/search_parse" not in c["file"]]
        if not own:
            print(f"no source of {lib} in the compile database"); bad += 1; continue
        base = shlex.split(own[0]["command"])
        for folder, h in header.items():
            src = os.path.join(tmp, f"{lib}_{folder}.cpp")
            open(src, "w").write(f'#include "{h}"\nint berth_layer_probe;\n')
            args = list(base)
            args[args.index("-o") + 1] = src + ".o"
            args[-1] = src
            r = subprocess.run(args, capture_output=True, text=True, cwd=own[0]["directory"])
            checked += 1
            want_ok = folder in may
            if want_ok and r.returncode != 0:
                bad += 1; print(f"{lib} may include {h} but cannot:\n{r.stderr[:400]}")
            if not want_ok and (r.returncode == 0 or "No such file or directory" not in r.stderr):
                bad += 1; print(f"{lib} must not see {h}, but it compiled (or failed otherwise)")
print(f"layers: {checked} includes checked, {bad} wrong")
print(f"{checked - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
