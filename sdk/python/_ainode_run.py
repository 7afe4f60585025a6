"""Job launcher (runs as the container's command): copies the read-only package and input.json into the
writable tmpfs work dir, then runs the entry script as __main__ there, so user code sees a normal directory."""

import os
import runpy
import shutil
import sys


def main():
    entry = sys.argv[1] if len(sys.argv) > 1 else "main.py"
    work = os.environ.get("AINODE_WORK_DIR", "/work")
    shutil.copytree("/job/code", work, dirs_exist_ok=True)
    if os.path.exists("/job/input.json"):
        shutil.copyfile("/job/input.json", os.path.join(work, "input.json"))
    os.chdir(work)
    sys.path.insert(0, work)
    sys.argv = [entry] + sys.argv[2:]
    runpy.run_path(os.path.join(work, entry), run_name="__main__")


if __name__ == "__main__":
    main()
