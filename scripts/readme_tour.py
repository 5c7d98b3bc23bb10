#!/usr/bin/env python3
"""Runs README.md's five-minute tour and its curl examples, as written, against the running
demo (scripts/demo.sh), then checks that they left nothing behind a newcomer must clean up.

    python3 scripts/readme_tour.py

Each command line of the two `sh` blocks runs in order through bash, with `droverctl` on the
PATH and the demo's pid files where the README says (`.drover/demo/`, or $DROVER_DEMO_DIR).
A command must exit 0 unless the README itself says otherwise on that line (`exit 6 if ...`,
`exit 5`); `--follow` runs for a few seconds. Where a newcomer would look before typing the
next line (a worker back from its restart, a node rejoined), the tour waits for it, with a
deadline. Exits non-zero on the first command that fails or the first thing left behind.
"""

import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/drover/target"))
PROFILE = os.environ.get("PROFILE", "dev")
BIN = os.path.join(TARGET, "debug" if PROFILE == "dev" else PROFILE)
DEMO = os.environ.get("DROVER_DEMO_DIR", os.path.join(ROOT, ".drover/demo"))
ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"],
           DROVER_ENDPOINTS="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")


def blocks(readme):
    """The tour's `sh` block and the curl block, as lists of command lines."""
    def block_after(marker):
        start = readme.index(marker)
        m = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
        return [l for l in m.group(1).splitlines() if l.strip()]
    return block_after("## A five-minute tour"), block_after("The same through HTTP")


def command_of(line):
    """The line without its trailing comment (two spaces or more, then `#`)."""
    return re.split(r"\s{2,}#", line, maxsplit=1)[0].strip()


def allowed_codes(line):
    """Exit codes the README's own comment on this line admits."""
    codes = {0}
    codes.update(int(c) for c in re.findall(r"exit (\d)", line))
    return codes


def ctl_json(*args):
    out = subprocess.run(["droverctl", "-o", "json", *args], env=ENV, capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def wait_until(what, check, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.5)
    sys.exit(f"readme tour: timed out after {seconds}s waiting for {what}")


def worker(wid):
    return ctl_json("workers", "show", wid)


def in_service(wid):
    """Back from a restart or a recommission: active, alive, not in maintenance."""
    w = worker(wid)
    return w and w["state"] == "active" and w["liveness"] == "alive" and not w["maintenance"]


def pid_alive(wid):
    try:
        with open(os.path.join(DEMO, f"{wid}.pid")) as f:
            os.kill(int(f.read()), 0)
        return True
    except (OSError, ValueError):
        return False


def all_nodes_answer():
    out = subprocess.run(["droverctl", "endpoint", "status"], env=ENV, capture_output=True,
                         timeout=30)
    return out.returncode == 0


# What a newcomer waits to see before the next line, keyed by a piece of the command.
BEFORE = {
    "rolling-restart": ("w4 back from its restart", lambda: in_service("w4")),
    "workers recommission w1": ("w1 disabled (the demo drained it)",
                                lambda: worker("w1")["state"] == "disabled"),
}
AFTER = {
    "workers recommission w1": ("w1 back in service", lambda: in_service("w1")),
    "cluster.sh restart 1": ("all three nodes answering", all_nodes_answer),
    "w3.pid": ("w3 drained, disabled and its process gone",
               lambda: worker("w3")["state"] == "disabled" and not pid_alive("w3")),
}


def run(line):
    cmd = command_of(line).replace(".drover/demo/", DEMO.rstrip("/") + "/")
    for key, (what, check) in BEFORE.items():
        if key in cmd:
            wait_until(what, check)
    follow = "--follow" in cmd
    print(f"$ {cmd}", flush=True)
    try:
        out = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=5 if follow else 120)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as e:
        if not follow:
            sys.exit(f"readme tour: `{cmd}` did not finish")
        code, stdout, stderr = 0, (e.stdout or b"").decode(), (e.stderr or b"").decode()
    shown = stdout.strip().splitlines()
    for l in shown[:8]:
        print(f"  {l[:160]}" + (" ..." if len(l) > 160 else ""))
    if len(shown) > 8:
        print(f"  ... ({len(shown) - 8} more lines)")
    if code not in allowed_codes(line):
        sys.exit(f"readme tour: `{cmd}` exited {code}:\n{stdout}\n{stderr}")
    for key, (what, check) in AFTER.items():
        if key in cmd:
            wait_until(what, check)


def left_behind():
    """What the tour would leave for a newcomer to clean up."""
    found = []
    workers = ctl_json("workers", "list") or []
    ids = {w["id"] for w in workers}
    if "w9" in ids:
        found.append("the curl examples' worker w9")
    for w in workers:
        if w.get("cordons"):
            found.append(f"a cordon on {w['id']}: {sorted(w['cordons'])}")
        if w.get("maintenance"):
            found.append(f"{w['id']} in maintenance")
        if w["id"] != "w3" and w["state"] != "active":
            found.append(f"{w['id']} is {w['state']}")
    for key in ("app/config", "demo/greeting"):
        got = subprocess.run(["droverctl", "kv", "get", key], env=ENV, capture_output=True)
        if got.returncode != 3:
            found.append(f"the key {key}")
    status = ctl_json("status") or {}
    if (status.get("brakes") or {}).get("pause"):
        found.append("the scheduler paused")
    return found


def main():
    with open(os.path.join(ROOT, "README.md")) as f:
        tour, curls = blocks(f.read())
    for line in tour + curls:
        run(line)
    backup = "/tmp/drover-backup.bin"
    if os.path.exists(backup):
        os.remove(backup)
    found = left_behind()
    if found:
        sys.exit("readme tour: left behind: " + "; ".join(found))
    print(f"readme tour: {len(tour)} tour commands and {len(curls)} curl examples ran as "
          "written; nothing left behind")


if __name__ == "__main__":
    main()
