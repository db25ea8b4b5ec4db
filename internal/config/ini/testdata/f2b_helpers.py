# Reference: fail2ban's helpers (substituteRecursiveTags, extractOptions,
# splitWithOptions), used by the Go tests.
# stdin: JSON list of {"tags": [[k, v]...], "ignore": [...], "conditional": ""}
#                  or {"extract": "..."} or {"split": "..."}
# stdout: JSON list of {"result": ...} or {"error": "..."}
import json, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.helpers import substituteRecursiveTags, extractOptions, splitWithOptions


def run(c):
    try:
        if "extract" in c:
            name, opts = extractOptions(c["extract"])
            return {"result": [name, [[k, v] for k, v in opts.items()]]}
        if "split" in c:
            return {"result": splitWithOptions(c["split"])}
        tags = dict((k, v) for k, v in c["tags"])
        res = substituteRecursiveTags(tags, c.get("conditional", ""), ignore=c.get("ignore") or ())
        return {"result": [[k, v] for k, v in res.items()]}
    except Exception as e:
        return {"error": type(e).__name__ + ": " + str(e)}


json.dump([run(c) for c in json.load(sys.stdin)], sys.stdout)
