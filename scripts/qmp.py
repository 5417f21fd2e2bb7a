#!/usr/bin/env python3
"""Drives a QEMU started with `-qmp unix:SOCKET,server,nowait` through a list of steps.

    scripts/qmp.py SOCKET STEP...

Steps, run in order:
    hmp:COMMAND     a human-monitor command (e.g. `hmp:sync-profile on`); its output is printed
    cont            resume a VM started with -S
    wait:STATUS     poll query-status until the run state is STATUS (e.g. `wait:shutdown`, with
                    -no-shutdown QEMU stops there instead of exiting when the guest powers off)
    quit            end QEMU

scripts/bench.sh uses it for QEMU's lock profiler (`sync-profile on` before the guest runs,
`info sync-profile` after it powered off). Exit status 1 if QEMU goes away or a command fails.
"""
import json
import socket
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, steps = sys.argv[1], sys.argv[2:]
    sock = socket.socket(socket.AF_UNIX)
    for _ in range(400):  # QEMU creates the socket early; wait up to 20 s for it
        try:
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    else:
        print(f"qmp.py: cannot connect to {path}", file=sys.stderr)
        return 1
    f = sock.makefile("rw")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise EOFError("QEMU closed the connection")
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg
            # asynchronous events (STOP, SHUTDOWN, ...) are skipped

    def call(cmd, **args):
        f.write(json.dumps({"execute": cmd, "arguments": args} if args else {"execute": cmd}) + "\n")
        f.flush()
        msg = reply()
        if "error" in msg:
            raise RuntimeError(f"{cmd}: {msg['error'].get('desc', msg['error'])}")
        return msg["return"]

    json.loads(f.readline())  # greeting
    call("qmp_capabilities")
    for step in steps:
        if step.startswith("hmp:"):
            out = call("human-monitor-command", **{"command-line": step[4:]})
            sys.stdout.write(out)
        elif step == "cont":
            call("cont")
        elif step.startswith("wait:"):
            want = step[5:]
            while call("query-status")["status"] != want:
                time.sleep(0.05)
        elif step == "quit":
            try:
                call("quit")
            except EOFError:
                pass
        else:
            print(f"qmp.py: unknown step '{step}'", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, RuntimeError, OSError) as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        sys.exit(1)
