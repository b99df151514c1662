"""Where the embedded runtime deliberately differs from a real Restate server, and why. Each entry is
tested as a difference in test_differences.py: the embedded runtime shows its behaviour, the real server
its own, and both agree on everything around it (for instance, how breaking a deadlock ends).

KNOWN_GAPS are differences the conformance suite found that are NOT deliberate: the scenario expects the
real server's behaviour and is marked xfail (strict) on the target named, so fixing the gap turns the test
red until the entry is removed.
"""

DIFFERENCES = {
    "deadlock": (
        "An ingress await on an invocation that is part of (or queued behind) a wait-for cycle raises "
        "pg.DeadlockError at once; a real server lets the call hang until someone cancels or kills. Reason: "
        "a notebook cell must never hang. The invocations stay blocked as in Restate, and cancelling the "
        "root ends them the same way on both (409 'cancelled')."),
    "stuck": (
        "An ingress await on an invocation that waits for something nothing can complete (an awakeable "
        "nobody resolves) raises pg.StuckError when the runtime is idle; a real server keeps the request "
        "open. Reason: a notebook cell must never hang."),
    "time": (
        "Time is virtual: a 1 h delayed send runs after `advance(1h)` (or as soon as an await needs it) in "
        "milliseconds of wall time; on a real server it runs an hour later. Reason: lessons about hours of "
        "delay must run in seconds, deterministically."),
    "cancel_completed": (
        "Cancelling or killing a completed invocation: the admin API answers 409 'already completed'; "
        "rt.cancel/rt.kill leave it alone quietly (the targets treat both as 'nothing to do')."),
}

KNOWN_GAPS = {
}
