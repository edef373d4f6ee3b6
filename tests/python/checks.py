"""The pass/fail reporting shared by the test scripts in this folder: each
check prints "ok: ..." or "FAIL: ..." (then exits 1), and a finished script
prints the plain "N passed, 0 failed" line that CI reads."""
import sys

passed = 0


def fail(msg, detail=""):
    print("FAIL:", msg)
    if detail:
        print(detail[-4000:])
    sys.exit(1)


def ok(what):
    global passed
    passed += 1
    print("ok:", what)


def summary():
    print(f"{passed} passed, 0 failed")
